/**
 * Only the newest call counts: for previews driven by mouse moves, where a call arriving every few
 * milliseconds must not queue up work whose answer nobody will look at.
 *
 *   const preview = latestWins((signal, x: number, y: number) =>
 *     predictor.predict(emb, { points: [[x, y]], labels: [1] }, { multimaskOutput: false, signal }));
 *   canvas.onmousemove = async (e) => {
 *     const r = await preview(e.offsetX, e.offsetY);
 *     if (r) draw(r.masks[0]);          // undefined: a newer move superseded this one
 *   };
 *
 * At most one call runs at a time. A call made while one runs waits; a newer call replaces the
 * waiting one, which resolves to `undefined` without running. The running call's signal fires when
 * a newer call arrives (`abortRunning`, default on), so it can stop early; a superseded call
 * resolves to `undefined` however it ends. The newest call resolves to its result or rejects with
 * its error.
 */
export function latestWins<A extends unknown[], R>(
  fn: (signal: AbortSignal, ...args: A) => Promise<R>,
  opts: { abortRunning?: boolean } = {},
): (...args: A) => Promise<R | undefined> {
  const abortRunning = opts.abortRunning ?? true;
  let generation = 0;
  let running: { controller: AbortController; done: Promise<unknown> } | null = null;

  return async (...args: A): Promise<R | undefined> => {
    const mine = ++generation;
    if (running && abortRunning) running.controller.abort(new Error('superseded by a newer call'));
    // Wait for the call in flight (and any that took its place) to finish.
    while (running) {
      await running.done.catch(() => undefined);
      if (mine !== generation) return undefined; // a newer call is waiting: it runs, not this one
    }
    if (mine !== generation) return undefined;
    const controller = new AbortController();
    const done = fn(controller.signal, ...args);
    running = { controller, done };
    try {
      const result = await done;
      return mine === generation ? result : undefined;
    } catch (e) {
      if (mine !== generation) return undefined;
      throw e;
    } finally {
      running = null;
    }
  };
}
