"""Stripe's own Python library on the other side of hood-payments' signatures.

Run by tests/stripe_compat.rs with the interpreter named by
HOOD_TEST_STRIPE_PYTHON. The payload comes on stdin (raw bytes), the webhook
secret in HOOD_STRIPE_WEBHOOK_SECRET (never on the command line).

  sign <t> [<other secret>]   print a Stripe-Signature header for the payload
                              at t, computed by stripe's WebhookSignature; with
                              another secret, a second v1 first (rotation)
  verify <header> <tolerance> verify_header, then Webhook.construct_event;
                              print "<event id> <event type>", or exit 1 with
                              Stripe's message
"""

import os
import sys

import stripe


def main() -> int:
    payload = sys.stdin.buffer.read()
    secret = os.environ["HOOD_STRIPE_WEBHOOK_SECRET"]
    command = sys.argv[1]
    if command == "sign":
        t = int(sys.argv[2])
        text = payload.decode("utf-8")
        signed = stripe.WebhookSignature._compute_signature(f"{t}.{text}", secret)
        parts = [f"t={t}"]
        if len(sys.argv) > 3:
            other = stripe.WebhookSignature._compute_signature(
                f"{t}.{text}", sys.argv[3]
            )
            parts.append(f"v1={other}")
        parts.append(f"v1={signed}")
        header = ",".join(parts)
        # The library's own header builder must agree with the hand-built one.
        generated = stripe.WebhookSignature.generate_signature_header(text, secret, t)
        if generated != f"t={t},v1={signed}":
            print(f"generate_signature_header disagrees: {generated}", file=sys.stderr)
            return 2
        print(header)
        return 0
    if command == "verify":
        header, tolerance = sys.argv[2], int(sys.argv[3])
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
            event = stripe.Webhook.construct_event(payload, header, secret, tolerance)
        except stripe.SignatureVerificationError as e:
            print(f"refused: {e}", file=sys.stderr)
            return 1
        print(f"{event.id} {event.type}")
        return 0
    print(f"unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
