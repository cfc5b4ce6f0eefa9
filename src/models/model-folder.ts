// Writing a model folder atomically: every file goes into a dot-prefixed temporary sibling (never listed by the
// registry), which is renamed into place at the end. Readers see the old folder or the new one, never a mix,
// and a failed import leaves nothing behind.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fsyncDir, fsyncTree } from '../util/fs.js';
import type { Labels } from './manifest.js';

export const MODEL_FILE = 'model.onnx';
export const WEIGHTS_FILE = 'model.weights.bin';
export const LABELS_FILE = 'labels.json';

/** The folder-name rule of the manifest: lowercase letters, digits, '.', '_' or '-', at most 64. */
export const MODEL_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function modelNameError(name: string): string | undefined {
  return MODEL_NAME_RE.test(name)
    ? undefined
    : `model name '${name}' is invalid: use lowercase letters, digits, '.', '_' or '-' (max 64, starting with a letter or digit)`;
}

export function placeholderLabels(classes: number): Labels {
  return Array.from({ length: classes }, (_, i) => ({ label: `class_${i}` }));
}

/**
 * Replaces `<modelsDir>/<name>` with the finished temp folder: rename the old one aside, rename the new one in,
 * delete the old. Readers see the old folder or the new one, never a mix.
 */
export function swapIntoPlace(tmpDir: string, target: string): void {
  // Every file of the new folder reaches the disk before the folder gets its name: after a power loss the
  // name never points at a folder of empty files.
  fsyncTree(tmpDir);
  if (existsSync(target)) {
    const old = `${tmpDir}.old`;
    renameSync(target, old);
    try {
      renameSync(tmpDir, target);
    } catch (e) {
      renameSync(old, target);
      throw e;
    }
    fsyncDir(dirname(target));
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmpDir, target);
    fsyncDir(dirname(target));
  }
}

/** Temp folders are dot-prefixed so the registry never lists them. */
export function tempDirFor(modelsDir: string, name: string): string {
  return join(modelsDir, `.tmp-${name}-${process.pid}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`);
}
