// Hood console: the little a server-rendered page cannot do alone.
// Live updates (Server-Sent Events), table sorting and filtering,
// confirmations, busy buttons, copying a secret, channel kinds, uploads.
// Every page works without this file; it only adds.
"use strict";

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // -- confirmations and busy states --------------------------------------
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    const busy = form.getAttribute("data-busy");
    const button = $("button[type=submit]", form);
    if (button) {
      form.setAttribute("aria-busy", "true");
      button.disabled = true;
      if (busy) {
        button.dataset.label = button.textContent;
        button.textContent = busy;
      }
    }
  });
  // Back/forward restores a page with its buttons as they were.
  window.addEventListener("pageshow", () => {
    $$("form[aria-busy=true]").forEach((form) => {
      form.removeAttribute("aria-busy");
      const button = $("button[type=submit]", form);
      if (button) {
        button.disabled = false;
        if (button.dataset.label) button.textContent = button.dataset.label;
      }
    });
  });

  // -- copy a secret --------------------------------------------------------
  $$("[data-copy]").forEach((button) => {
    button.addEventListener("click", () => {
      const input = document.getElementById(button.getAttribute("data-copy"));
      if (!input) return;
      input.select();
      const done = () => { button.textContent = "Copied"; };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(input.value).then(done, () => {});
      }
    });
  });

  // -- tables: sort by a header, filter by text -----------------------------
  function cellValue(row, index) {
    const cell = row.cells[index];
    if (!cell) return "";
    const time = $("time", cell);
    return time ? time.getAttribute("datetime") : cell.textContent.trim();
  }
  $$("table[data-sortable]").forEach((table) => {
    $$("thead th", table).forEach((th, index) => {
      const button = $("button.sort", th);
      if (!button) return;
      button.addEventListener("click", () => {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        $$("thead th", table).forEach((other) => other.setAttribute("aria-sort", "none"));
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows).filter((r) => !r.classList.contains("empty"));
        rows.sort((a, b) => {
          const x = cellValue(a, index);
          const y = cellValue(b, index);
          const nx = Number(x), ny = Number(y);
          const order = x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny)
            ? nx - ny
            : x.localeCompare(y, undefined, { numeric: true });
          return ascending ? order : -order;
        });
        rows.forEach((r) => body.appendChild(r));
      });
    });
  });
  $$("input[data-filter]").forEach((input) => {
    const table = document.getElementById(input.getAttribute("data-filter"));
    if (!table) return;
    input.addEventListener("input", () => {
      const needle = input.value.trim().toLowerCase();
      Array.from(table.tBodies[0].rows).forEach((row) => {
        if (row.classList.contains("empty")) return;
        row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
      });
    });
  });

  // -- channel kinds: show the fields of the chosen kind --------------------
  $$("select[data-kind-select]").forEach((select) => {
    const form = select.form;
    const show = () => {
      $$("fieldset[data-kind]", form).forEach((fs) => {
        const on = fs.getAttribute("data-kind") === select.value;
        fs.hidden = !on;
        $$("input[data-required]", fs).forEach((input) => { input.required = on; });
      });
    };
    select.addEventListener("change", show);
    show();
  });

  // -- uploads: each file streams to the API, the page's token in a header --
  function problemText(xhr) {
    try {
      const problem = JSON.parse(xhr.responseText);
      return problem.detail || problem.title || `HTTP ${xhr.status}`;
    } catch (_) {
      return `HTTP ${xhr.status}`;
    }
  }
  $$("form[data-upload]").forEach((form) => {
    form.hidden = false;
    const namespace = form.getAttribute("data-upload");
    const prefix = form.getAttribute("data-prefix") || "";
    const input = $("input[type=file]", form);
    const bar = $("progress", form);
    const status = $("[role=status]", form);
    const keyPath = (key) => key.split("/").map(encodeURIComponent).join("/");
    const send = (file, before, total) => new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", `/console/storage/${namespace}/objects/${keyPath(prefix + file.name)}`);
      xhr.setRequestHeader("X-CSRF-Token", document.body.getAttribute("data-csrf"));
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable && total > 0) bar.value = ((before + e.loaded) / total) * 100;
      };
      xhr.onload = () => (xhr.status >= 200 && xhr.status < 300
        ? resolve()
        : reject(new Error(`${file.name}: ${problemText(xhr)}`)));
      xhr.onerror = () => reject(new Error(`${file.name}: the connection failed`));
      xhr.send(file);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const files = Array.from(input.files || []);
      if (files.length === 0) return;
      const total = files.reduce((sum, f) => sum + f.size, 0);
      bar.hidden = false;
      bar.value = 0;
      let before = 0;
      try {
        for (const file of files) {
          status.textContent = `Uploading ${file.name}…`;
          await send(file, before, total);
          before += file.size;
        }
        bar.value = 100;
        status.textContent = `Uploaded ${files.length} file${files.length === 1 ? "" : "s"}.`;
        window.location.reload();
      } catch (e) {
        status.textContent = `Not uploaded: ${e.message}`;
        status.dataset.state = "error";
        form.removeAttribute("aria-busy");
        const button = $("button[type=submit]", form);
        if (button) {
          button.disabled = false;
          if (button.dataset.label) button.textContent = button.dataset.label;
        }
      }
    });
  });

  // -- live updates ---------------------------------------------------------
  const live = document.body.getAttribute("data-live");
  if (live === null || !window.EventSource) return;
  const status = $("#live-status");
  const say = (text, state) => {
    if (!status) return;
    status.textContent = text;
    status.dataset.state = state;
  };
  const pageNode = new URLSearchParams(live).get("node");

  function toast(text) {
    const box = $("#toasts");
    if (!box) return;
    const item = document.createElement("div");
    item.className = "toast";
    item.setAttribute("role", "status");
    item.textContent = text;
    box.appendChild(item);
    setTimeout(() => item.remove(), 8000);
  }

  // Server-rendered fragments (escaped by the server's templates).
  function fragment(html, tag) {
    const holder = document.createElement(tag === "tr" ? "tbody" : tag === "li" ? "ol" : "div");
    holder.innerHTML = html;
    return holder.firstElementChild;
  }

  function onNode(data) {
    $$(`[data-node-state="${data.id}"]`).forEach((el) => {
      el.innerHTML = data.state_html;
    });
    $$(`[data-node-sync="${data.id}"]`).forEach((el) => { el.textContent = data.sync_status; });
    $$(`[data-node="${data.id}"][data-node-field]`).forEach((el) => {
      const value = data[el.getAttribute("data-node-field")];
      el.textContent = value === null || value === undefined ? "—" : String(value);
    });
    // The recorded head lags the live one: it never overwrites it.
    $$(`[data-node-head="${data.id}"]:not([data-live-head])`).forEach((el) => {
      el.textContent = data.head_height === null ? "—" : String(data.head_height);
    });
  }

  function onTransition(data) {
    const list = $("#timeline");
    if (!list || list.querySelector(`li[data-seq="${data.seq}"]`)) return;
    list.insertBefore(fragment(data.html, "li"), list.firstChild);
  }

  function onHead(data) {
    $$(`[data-node-head="${data.id}"]`).forEach((el) => {
      el.setAttribute("data-live-head", "");
      el.textContent = String(data.head_height);
    });
  }

  const toasted = new Set();
  function onIncident(data) {
    const row = fragment(data.row_html, "tr");
    let placed = false;
    $$(`tr[data-incident="${data.id}"]`).forEach((old) => {
      old.replaceWith(row.cloneNode(true));
      placed = true;
    });
    if (!placed && data.new && (!pageNode || data.node_id === pageNode)) {
      $$("table[data-incidents] tbody").forEach((body) => {
        $$("tr.empty", body).forEach((r) => r.remove());
        body.insertBefore(row.cloneNode(true), body.firstChild);
      });
    }
    if (data.new && !toasted.has(data.id)) {
      toasted.add(data.id);
      toast(`Incident opened: ${data.title}`);
    }
    const count = $("[data-testid=open-incidents]");
    if (count) {
      count.textContent = String($$("table[data-incidents] tbody tr[data-incident]")
        .filter((r) => /state-(open|acknowledged|muted)/.test(r.innerHTML)).length);
    }
  }

  // The user's notifications: a toast (an opened incident already has
  // one on pages that follow incidents), the header's count, and the
  // inbox's table when it is open.
  const followsIncidents = new URLSearchParams(live).get("feed") !== "only";
  function onNotification(data) {
    if (!(followsIncidents && data.subject === "incident.opened")) toast(data.title);
    $$("table#notifications tbody").forEach((body) => {
      if ($(`tr[data-notification="${data.id}"]`, body)) return;
      $$("tr.empty", body).forEach((r) => r.remove());
      body.insertBefore(fragment(data.row_html, "tr"), body.firstChild);
    });
  }
  function onUnread(data) {
    $$("[data-testid=unread-count]").forEach((el) => {
      el.textContent = String(data.count);
      el.hidden = data.count === 0;
    });
    $$("[data-testid=inbox-unread]").forEach((el) => { el.textContent = `${data.count} unread`; });
  }

  function onLogs(data) {
    const pre = $("#log-tail");
    if (!pre) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = data.text || "(no output yet)";
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  let source;
  function connect() {
    source = new EventSource(`/console/live?${live}`);
    source.addEventListener("hello", (e) => {
      const data = JSON.parse(e.data);
      say(data.bus ? "Live" : "Live (sampled: no event bus)", "live");
    });
    source.addEventListener("node", (e) => onNode(JSON.parse(e.data)));
    source.addEventListener("head", (e) => onHead(JSON.parse(e.data)));
    source.addEventListener("transition", (e) => onTransition(JSON.parse(e.data)));
    source.addEventListener("incident", (e) => onIncident(JSON.parse(e.data)));
    source.addEventListener("logs", (e) => onLogs(JSON.parse(e.data)));
    source.addEventListener("notification", (e) => onNotification(JSON.parse(e.data)));
    source.addEventListener("unread", (e) => onUnread(JSON.parse(e.data)));
    source.addEventListener("reauth", () => {
      source.close();
      window.location.reload();
    });
    source.onerror = () => say("Reconnecting…", "retry");
  }
  connect();
  window.addEventListener("pagehide", () => source && source.close());
})();
