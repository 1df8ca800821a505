// TypeScript < 6.0: samclip-webgpu/node with the WebGPU types of @webgpu/types (see index.d.ts).
/// <reference types="@webgpu/types" />
export * from '../../lib/node/index.js';
