// The architectures convserve can import Keras weights into, by name.
import { INCEPTION_V3 } from './inception_v3.js';
import type { Architecture, ArchitectureName } from './layers.js';
import { VGG19 } from './vgg19.js';

export const ARCHITECTURES: Record<ArchitectureName, Architecture> = { vgg19: VGG19, inception_v3: INCEPTION_V3 };
export const ARCHITECTURE_NAMES = Object.keys(ARCHITECTURES) as ArchitectureName[];

export function isArchitectureName(name: string): name is ArchitectureName {
  return Object.hasOwn(ARCHITECTURES, name);
}

/** Accepts 'vgg19', 'inception_v3' and the Keras spellings 'VGG19', 'InceptionV3', 'inception-v3'. */
export function getArchitecture(name: string): Architecture {
  const key = name.trim().toLowerCase().replace(/-/g, '_').replace(/^inceptionv3$/, 'inception_v3');
  if (isArchitectureName(key)) return ARCHITECTURES[key];
  throw new Error(`unknown architecture '${name}' (known: ${ARCHITECTURE_NAMES.join(', ')})`);
}

export type { Architecture, ArchitectureName, ChainLayer, TopBlock } from './layers.js';
