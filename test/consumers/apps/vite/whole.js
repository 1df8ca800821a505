// Everything the browser entry exports (for the whole-entry bundle size, and the dev server's graph).
import * as samclip from 'samclip-webgpu';

window.__samclip = { done: true, exports: Object.keys(samclip).length };
