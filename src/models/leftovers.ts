// Model folders are replaced by writing `<modelsDir>/.tmp-<name>-<pid>-<id>`, renaming the old folder aside to
// `<that>.old`, renaming the new one in and deleting the old (models/import.ts swapIntoPlace). A crash can leave
// any step half done; at start the registry puts things right, touching only folders of processes that are gone:
//
//   .old present, <name> missing   → the swap stopped between its renames: the new folder (complete: it is only
//                                     swapped once written and flushed) goes in if it is there, else the old one
//                                     goes back
//   .old present, <name> present   → the swap finished but the old folder was not deleted: delete it
//   .tmp-… alone                   → an interrupted write (never swapped): delete it
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from '../util/fs.js';

const LEFTOVER_RE = /^\.tmp-(.+)-(\d+)-[a-z0-9]+(\.old)?$/;

export interface LeftoverAction {
  folder: string;
  action: 'restored-old' | 'completed-swap' | 'deleted-old' | 'deleted-tmp';
  model: string;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/** Recovers or removes what interrupted model writes left in `modelsDir`; returns what it did. */
export function recoverModelLeftovers(modelsDir: string): LeftoverAction[] {
  if (!existsSync(modelsDir)) return [];
  const done: LeftoverAction[] = [];
  const names = readdirSync(modelsDir);
  const parsed = names.flatMap((f) => {
    const m = LEFTOVER_RE.exec(f);
    return m && !processAlive(Number(m[2])) ? [{ folder: f, model: m[1]!, old: m[3] !== undefined }] : [];
  });
  // The .old folders first: their decision may use the matching temp folder.
  for (const l of parsed.filter((x) => x.old)) {
    const target = join(modelsDir, l.model);
    const oldPath = join(modelsDir, l.folder);
    const tmpPath = oldPath.slice(0, -'.old'.length);
    if (!existsSync(target)) {
      if (existsSync(join(tmpPath, 'manifest.json'))) {
        renameSync(tmpPath, target);
        rmSync(oldPath, { recursive: true, force: true });
        done.push({ folder: l.folder, action: 'completed-swap', model: l.model });
      } else {
        renameSync(oldPath, target);
        done.push({ folder: l.folder, action: 'restored-old', model: l.model });
      }
    } else {
      rmSync(oldPath, { recursive: true, force: true });
      done.push({ folder: l.folder, action: 'deleted-old', model: l.model });
    }
  }
  for (const l of parsed.filter((x) => !x.old)) {
    const path = join(modelsDir, l.folder);
    if (!existsSync(path)) continue; // moved into place above
    rmSync(path, { recursive: true, force: true });
    done.push({ folder: l.folder, action: 'deleted-tmp', model: l.model });
  }
  if (done.length) fsyncDir(modelsDir);
  return done;
}
