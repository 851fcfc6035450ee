/* One render scheduler: state changes mark what must be drawn; the marks made until the next
 * frame are drawn together, once. DOM-free: the page passes how to wait for a frame. */

export class RenderScheduler {
  /**
   * @param {(parts: Map<string, object>) => void} draw draws the marked parts, each with the
   *   union of the details it was marked with
   * @param {(callback: () => void) => void} nextFrame e.g. requestAnimationFrame
   */
  constructor(draw, nextFrame) {
    this.draw = draw;
    this.nextFrame = nextFrame;
    this.dirty = new Map();
    this.scheduled = false;
  }

  /** `part` must be drawn again; `detail` flags (e.g. {appended: true}) add up until then. */
  markDirty(part, detail = {}) {
    const flags = this.dirty.get(part) ?? {};
    for (const [key, value] of Object.entries(detail)) flags[key] = Boolean(flags[key] || value);
    this.dirty.set(part, flags);
    if (this.scheduled) return;
    this.scheduled = true;
    this.nextFrame(() => this.flush());
  }

  /** Draw what is marked now (the frame callback, or a tab about to be hidden). */
  flush() {
    this.scheduled = false;
    if (!this.dirty.size) return;
    const parts = this.dirty;
    this.dirty = new Map();
    this.draw(parts);
  }

  /** Forget the marks (the session ended; its views were cleared). */
  clear() {
    this.dirty = new Map();
  }
}
