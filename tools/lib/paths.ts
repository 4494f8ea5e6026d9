// Where the built tools are: dist/tools beside the engine's dist/src (tsconfig's rootDir
// is the checkout, so each top-level folder keeps its name under dist/). The engine's
// own places (ROOT, SQL_DIR, DIST_DIR = dist/src) stay in src/paths.ts: the engine never
// reads anything of tools/.
import path from 'node:path';
import { ROOT } from '../../src/paths.js';

export { DIST_DIR, ROOT, SQL_DIR } from '../../src/paths.js';
/** dist/: the compiled checkout (src/, tools/, bench/ under it). */
export const DIST_ROOT = path.join(ROOT, 'dist');
/** dist/tools: the compiled tools/. */
export const TOOLS_DIST_DIR = path.join(DIST_ROOT, 'tools');
