// The page's side of worker.js (and the compute worker's side of its CPU helpers): each request
// is a message with an id, answered by a promise.
// Events the worker sends on its own (progress, notices) go to `onEvent`. If the worker dies (out
// of memory, a crash in the browser) every pending request is rejected with the reason, so the page
// reports it instead of waiting for ever.

export class WorkerClient {
  constructor(name, onEvent = () => {}) {
    this.name = name;
    this.onEvent = onEvent;
    this.next = 1;
    this.pending = new Map();
    this.worker = new Worker(new URL("worker.js", import.meta.url), { type: "module", name });
    this.worker.onmessage = (ev) => {
      const msg = ev.data;
      if (msg.event) { this.onEvent(msg); return; }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(Object.assign(new Error(msg.error), { whole: msg.whole }));
    };
    this.worker.onerror = (ev) => {
      ev.preventDefault();
      const why = `the ${name} worker stopped (${ev.message || "the browser ended it"})`;
      for (const p of this.pending.values()) p.reject(new Error(why));
      this.pending.clear();
      this.onEvent({ event: "crash", text: why });
    };
  }

  /** Sends `op` with `args`; resolves with the worker's answer. `transfer` lists buffers moved, not copied. */
  call(op, args = {}, transfer = []) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, args }, transfer);
    });
  }
}
