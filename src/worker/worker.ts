/**
 * The worker script that `createSamWorker()` starts: it serves the page's calls. This module is
 * the wrapper's only one with an effect at load time.
 */
import { serveSamWorker } from './host.js';

serveSamWorker();
