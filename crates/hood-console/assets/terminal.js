// Hood console: a terminal into an allocation. xterm.js draws it; this
// file speaks the API's terminal protocol (hood_terminal::frame: one type
// byte, output numbered by offset) over the console's WebSocket, and
// resumes a dropped connection from the byte after the last one shown, so
// nothing is shown twice or lost.
"use strict";

(function () {
  const root = document.getElementById("terminal");
  if (!root || typeof Terminal === "undefined" || typeof FitAddon === "undefined") return;
  const status = document.getElementById("terminal-status");

  const INPUT = 0, OUTPUT = 1, RESIZE = 2, PAUSE = 3, RESUME = 4, SNAPSHOT = 5, EXIT = 6;
  const NO_EXIT_CODE = -2147483648;
  // Flow control: ask the server to stop while xterm has this much
  // unparsed output, and to go on once it is down to the low mark.
  const HIGH_WATER = 512 * 1024;
  const LOW_WATER = 64 * 1024;
  const MAX_ATTEMPTS = 8;

  const term = new Terminal({
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    fontSize: 14,
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(root);
  fit.fit();
  term.focus();

  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let socket = null;
  let session = null; // the session id, from the first message
  let offset = 0; // the offset of the next output byte to show
  let ended = false;
  let attempts = 0;
  let pending = 0; // output handed to xterm and not yet parsed
  let paused = false;

  function show(text, state) {
    if (!status) return;
    status.textContent = text;
    status.setAttribute("data-state", state);
  }

  function frame(type, body) {
    const bytes = new Uint8Array(1 + (body ? body.length : 0));
    bytes[0] = type;
    if (body) bytes.set(body, 1);
    return bytes;
  }

  function send(bytes) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(bytes);
  }

  function sendSize() {
    const body = new Uint8Array(4);
    const view = new DataView(body.buffer);
    view.setUint16(0, term.cols);
    view.setUint16(2, term.rows);
    send(frame(RESIZE, body));
  }

  function write(data) {
    pending += data.length;
    if (!paused && pending > HIGH_WATER) {
      paused = true;
      send(frame(PAUSE));
    }
    term.write(data, () => {
      pending -= data.length;
      if (paused && pending < LOW_WATER) {
        paused = false;
        send(frame(RESUME));
      }
    });
  }

  function receive(buffer) {
    const bytes = new Uint8Array(buffer);
    if (bytes.length === 0) return;
    const view = new DataView(buffer);
    switch (bytes[0]) {
      case OUTPUT: {
        if (bytes.length < 9) return;
        const at = Number(view.getBigUint64(1));
        const data = bytes.subarray(9);
        // What starts before `offset` was shown already.
        const skip = Math.max(0, offset - at);
        if (skip < data.length) {
          write(data.subarray(skip));
          offset = at + data.length;
        }
        break;
      }
      case SNAPSHOT: {
        // The missed output left the server's ring: the whole screen
        // instead, and output goes on from its offset.
        if (bytes.length < 9) return;
        offset = Number(view.getBigUint64(1));
        term.reset();
        write(bytes.subarray(9));
        break;
      }
      case EXIT: {
        if (bytes.length < 5) return;
        const code = view.getInt32(1);
        const reason = decoder.decode(bytes.subarray(5));
        ended = true;
        show(
          code === NO_EXIT_CODE ? `Session ended: ${reason}` : `Session ended (exit ${code}): ${reason}`,
          "ended",
        );
        break;
      }
      default:
        break;
    }
  }

  function address() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = session
      ? `session=${encodeURIComponent(session)}&offset=${offset}`
      : `cols=${term.cols}&rows=${term.rows}`;
    return `${scheme}//${location.host}${root.getAttribute("data-socket")}?${query}`;
  }

  function connect() {
    show(session ? "Reconnecting…" : "Connecting…", "connecting");
    const ws = new WebSocket(address());
    ws.binaryType = "arraybuffer";
    socket = ws;
    let opened = false;
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        receive(event.data);
        return;
      }
      // The first message: the session and where its output resumes.
      const hello = JSON.parse(event.data);
      opened = true;
      attempts = 0;
      session = hello.session_id;
      offset = hello.offset;
      paused = false; // every connection starts sending
      root.setAttribute("data-session", session);
      show("Connected", "connected");
      sendSize();
    });
    ws.addEventListener("close", () => {
      if (socket !== ws) return;
      socket = null;
      if (ended) return;
      if (!session && !opened) {
        show("The terminal could not be opened: the allocation may not be active. Reload to try again.", "ended");
        return;
      }
      attempts += 1;
      if (attempts > MAX_ATTEMPTS) {
        show("The connection is lost. Reload the page for a new session.", "ended");
        return;
      }
      const delay = Math.min(10000, 500 * 2 ** (attempts - 1));
      show(`Connection lost; reconnecting in ${Math.ceil(delay / 1000)} s…`, "connecting");
      setTimeout(connect, delay);
    });
  }

  term.onData((data) => send(frame(INPUT, encoder.encode(data))));
  term.onBinary((data) => {
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i += 1) bytes[i] = data.charCodeAt(i) & 0xff;
    send(frame(INPUT, bytes));
  });
  term.onResize(() => sendSize());
  window.addEventListener("resize", () => fit.fit());

  // For diagnostics (and the browser tests): where the session stands, and
  // a way to drop the connection as a network would.
  window.hoodTerminal = {
    get session() { return session; },
    get offset() { return offset; },
    drop() { if (socket) socket.close(); },
  };

  connect();
})();
