// TypeScript < 6.0 (package.json exports "types@<6.0"): its lib.dom has no WebGPU types, so they
// come from @webgpu/types (a dependency). TypeScript 6.0+ declares them in lib.dom itself, where
// @webgpu/types would clash; it reads ../../lib/index.d.ts directly.
/// <reference types="@webgpu/types" />
export * from '../../lib/index.js';
