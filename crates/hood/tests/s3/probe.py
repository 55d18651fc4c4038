"""One S3 call with a given key, for scope and revocation checks.

Usage: probe.py ENDPOINT ACCESS_KEY SECRET OP BUCKET [KEY [BODY]]
OP: list-buckets | get | put | head-bucket | list. ACCESS_KEY `-`: an
anonymous (unsigned) request. Prints the result as JSON:
{"code": "ok" | S3 error code, "value": ...}.
"""
import json
import sys

from botocore.exceptions import ClientError

import hood_s3

endpoint, access_key, secret, op, bucket = sys.argv[1:6]
rest = sys.argv[6:]
s3 = hood_s3.client(endpoint, access_key, secret)
try:
    if op == "list-buckets":
        value = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    elif op == "get":
        value = s3.get_object(Bucket=bucket, Key=rest[0])["Body"].read().decode()
    elif op == "put":
        value = s3.put_object(Bucket=bucket, Key=rest[0], Body=rest[1].encode())["ETag"]
    elif op == "list":
        value = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    elif op == "head-bucket":
        value = s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"]
    else:
        raise SystemExit(f"unknown op {op}")
    print(json.dumps({"code": "ok", "value": value}))
except ClientError as e:
    print(json.dumps({"code": e.response["Error"]["Code"], "value": None}))
