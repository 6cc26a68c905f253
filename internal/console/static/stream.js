// EventStream follows a session's event log over the broker's WebSocket
// and survives network drops: it remembers the sequence number of the last
// event it handed on and reconnects with ?after=SEQ, so that a viewer sees
// every event once, in order, whatever happens to the connection.

export const SUBPROTOCOL = "agentbroker.events.v1";

// Close code the broker uses when the session's log has ended.
const CLOSE_SESSION_ENDED = 4000;

export class EventStream {
  // opts: {session, token, onFrame(frame), onDuplicate(frame), onNotice(text),
  //        onStatus(status, detail), probe(), resumable()}
  // status is "connecting", "live", "reconnecting", "ended" or "failed".
  // probe() is called after a failed handshake; it resolves to a reason
  // to stop trying (the token or the session is gone), or null.
  // resumable() says whether the session's last state change was an
  // interruption the broker will resume.
  constructor(opts) {
    this.opts = opts;
    this.lastSeq = 0;
    this.duplicates = 0; // frames at or below lastSeq, dropped
    this.gaps = 0; // frames that skipped a sequence number
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.closed = false;
  }

  start() {
    this.connect();
  }

  // close stops following; no reconnect happens after it.
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "viewer left");
  }

  connect() {
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/v1/sessions/${encodeURIComponent(this.opts.session)}/events?after=${this.lastSeq}`;
    this.opts.onStatus(this.attempt ? "reconnecting" : "connecting");
    let opened = false;
    let ws;
    try {
      // Browsers cannot set Authorization on a WebSocket: the token goes
      // as a second subprotocol, which the broker never logs.
      ws = new WebSocket(url, [SUBPROTOCOL, `bearer.${this.opts.token}`]);
    } catch (e) {
      this.opts.onStatus("failed", String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.opts.onStatus("live");
    };
    ws.onmessage = (ev) => {
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        this.opts.onNotice("the broker sent a frame that is not JSON");
        return;
      }
      if (!f.seq) {
        if (f.type === "error") this.opts.onNotice(f.error || "error");
        return;
      }
      if (f.seq <= this.lastSeq) {
        this.duplicates++;
        this.opts.onDuplicate?.(f);
        return;
      }
      if (f.seq !== this.lastSeq + 1) this.gaps++;
      this.lastSeq = f.seq;
      this.opts.onFrame(f);
    };
    ws.onclose = async (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      // The log ended. A broker that shuts down ends its sessions' logs
      // too, marking them resumable: it relaunches them when it starts
      // again, and their logs go on from where they were.
      let detail = "";
      if (ev.code === CLOSE_SESSION_ENDED) {
        if (!this.opts.resumable?.()) {
          this.opts.onStatus("ended", ev.reason);
          return;
        }
        detail = "the broker is restarting; ";
      }
      if (!opened && this.opts.probe) {
        const why = await this.opts.probe();
        if (why) {
          this.opts.onStatus("failed", why);
          return;
        }
      }
      this.attempt++;
      const delay = Math.min(5000, 250 * 2 ** Math.min(this.attempt - 1, 5));
      this.opts.onStatus("reconnecting", `${detail}retrying in ${(delay / 1000).toFixed(1)} s`);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }
}
