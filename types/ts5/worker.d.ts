// TypeScript < 6.0: samclip-webgpu/worker with the WebGPU types of @webgpu/types (see index.d.ts).
/// <reference types="@webgpu/types" />
export * from '../../lib/worker/index.js';
