// The repository root, found from this file whether it runs from src/ (tests) or dist/src/.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (package.json)');
    dir = up;
  }
  return dir;
}

export const ROOT = findRoot();
export const SQL_DIR = path.join(ROOT, 'sql');
export const DIST_DIR = path.join(ROOT, 'dist', 'src');
