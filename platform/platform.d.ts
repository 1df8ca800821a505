// Types of "#platform" (package.json "imports"): ./node.js on Node, ./browser.js elsewhere.
// Only the library's own modules import it; no public declaration refers to it.
export declare const runtime: 'node' | 'browser';
/** node:fs/promises on Node, else null. */
export declare const nodeFs: typeof import('node:fs/promises') | null;
/** node:fs on Node, else null. */
export declare const nodeFsSync: typeof import('node:fs') | null;
/** zlib's inflateRawSync on Node (throwing ERR_BUFFER_TOO_LARGE past maxOutputLength), else null. */
export declare const inflateRaw: ((bytes: Uint8Array, maxOutputLength?: number) => Uint8Array) | null;
/** Imports Dawn's `webgpu` package on Node (rejects when it is not installed), else null. */
export declare const importWebgpu: (() => Promise<{ create(flags: string[]): GPU; globals: object }>) | null;
