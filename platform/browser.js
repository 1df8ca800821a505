// The browser half of the platform seam (package.json "imports" → "#platform", conditions
// "browser" and "default"): no file system, no Dawn. The library checks for null and says what
// to use instead (URLs, bytes, navigator.gpu). Types in platform.d.ts.
export const runtime = 'browser';
export const nodeFs = null;
export const nodeFsSync = null;
export const inflateRaw = null;
export const importWebgpu = null;
