// Where the engine is installed: the directory holding package.json above this file,
// whether it runs from src/ (tests), dist/src/ in a checkout, or dist/src/ in a release
// (`npm run release`), which carries package.json, dist/, sql/ and deploy/ only.
// Files read at run time resolve from here or from their own module, never from the
// working directory, and never from src/ (a release has none).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) {
      throw new Error(`cannot find the installation root (package.json) above ${fileURLToPath(import.meta.url)}`);
    }
    dir = up;
  }
  return dir;
}

export const ROOT = findRoot();
export const SQL_DIR = path.join(ROOT, 'sql');
export const DIST_DIR = path.join(ROOT, 'dist', 'src');
