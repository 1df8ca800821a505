/**
 * How a Node process waits for Dawn.
 *
 * While any Dawn promise is pending (onSubmittedWorkDone, mapAsync, popErrorScope, ...), Dawn's
 * Node binding polls its instance by handing a native callback to the global `setImmediate`, again
 * and again until the promise settles: a busy loop that holds one host core at 100 %. On a GPU
 * that buys the lowest latency. On a CPU adapter (lavapipe, SwiftShader) the "GPU" is the host's
 * own cores, and the loop takes one from the driver's threads: on a 2-core host a 4096x768 @
 * 768x2304 matmul took 1.07 s awaited that way and 0.72 s when the poll ran once a millisecond
 * (docs/profiling.md, "Waiting for Dawn on a CPU adapter").
 *
 * `timer` polling lets a wait spin for its first millisecond (short waits stay short), then moves
 * Dawn's poll onto a 1 ms timer. Only Dawn's poll callbacks are moved: N-API functions (native,
 * nameless, no parameters, with a `prototype` of their own). Promise resolvers, bound functions
 * and every JavaScript callback that other code hands to `setImmediate` keep their semantics.
 * The wrapper is installed on the global once, the first time a context asks for `timer`, and
 * passes everything through while no live context wants it.
 */

/** `spin`: Dawn's own busy poll. `timer`: spin 1 ms, then poll every millisecond. */
export type HostPolling = 'spin' | 'timer';

/** A wait spins this long before its polls move onto timers. */
const SPIN_MS = 1;
/** Poll period once a wait has spun SPIN_MS. */
const TIMER_MS = 1;

type SetImmediate = (cb: (...args: unknown[]) => void, ...args: unknown[]) => unknown;

const WRAPPED = Symbol.for('samclip-webgpu.hostPolling');

/**
 * Shared through the global, like the wrapper itself, so that two copies of the library in one
 * process (two versions, or an ESM and a CommonJS build) count their contexts together.
 */
interface PollState {
  /** Live contexts that asked for timer polling. */
  timerUsers: number;
  /** True while one of Dawn's poll callbacks runs: a poll it schedules continues the same wait. */
  inPoll: boolean;
  waitStart: number;
}
const STATE = Symbol.for('samclip-webgpu.hostPollingState');
const state: PollState = ((globalThis as Record<symbol, PollState | undefined>)[STATE] ??= { timerUsers: 0, inPoll: false, waitStart: 0 });

/** The default for an adapter: `timer` where the adapter's work runs on the host's cores. */
export function defaultPolling(cpuAdapter: boolean): HostPolling {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.SAMCLIP_POLLING;
  if (env === 'spin' || env === 'timer') return env;
  return cpuAdapter ? 'timer' : 'spin';
}

/** Whether `cb` is one of Dawn's poll callbacks (an N-API function; see the header). */
export function isDawnPoll(cb: unknown): boolean {
  if (typeof cb !== 'function' || cb.length !== 0 || cb.name !== '') return false;
  if (!Object.prototype.hasOwnProperty.call(cb, 'prototype')) return false;
  return /\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(cb));
}

function install(g: { setImmediate?: SetImmediate; setTimeout: (cb: (...args: unknown[]) => void, ms: number) => unknown }): boolean {
  const original = g.setImmediate;
  if (typeof original !== 'function') return false; // a browser: nothing polls this way
  if ((original as unknown as Record<symbol, unknown>)[WRAPPED]) return true;
  const wrapper = function setImmediate(cb: (...args: unknown[]) => void, ...args: unknown[]): unknown {
    if (state.timerUsers > 0 && isDawnPoll(cb)) {
      const now = performance.now();
      // Dawn reschedules its poll from inside the previous one while promises are pending; a poll
      // scheduled from anywhere else starts a new wait.
      if (!state.inPoll) state.waitStart = now;
      const poll = () => {
        state.inPoll = true;
        try {
          cb(...args);
        } finally {
          state.inPoll = false;
        }
      };
      return now - state.waitStart >= SPIN_MS ? g.setTimeout(poll, TIMER_MS) : original(poll);
    }
    return original(cb, ...args);
  };
  // Keep what hangs off the original (util.promisify.custom, __promisify__).
  for (const key of Reflect.ownKeys(original)) {
    if (key === 'length' || key === 'name' || key === 'prototype') continue;
    const d = Object.getOwnPropertyDescriptor(original, key);
    if (d) Object.defineProperty(wrapper, key, d);
  }
  Object.defineProperty(wrapper, WRAPPED, { value: true });
  g.setImmediate = wrapper;
  return true;
}

/**
 * Ask for `timer` polling while the returned release function has not been called (contexts call
 * it when destroyed). `spin` asks for nothing. Returns a no-op where the runtime has no setImmediate.
 */
export function adoptPolling(mode: HostPolling): () => void {
  if (mode !== 'timer') return () => {};
  if (!install(globalThis as unknown as Parameters<typeof install>[0])) return () => {};
  state.timerUsers++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    state.timerUsers--;
  };
}

/** Whether some live context has Dawn's polls on timers now (tests, `samclip doctor`). */
export function timerPollingActive(): boolean {
  return state.timerUsers > 0;
}
