// The official Keras ImageNet weight files (keras-facts §3): where they live, their MD5 (Keras' own
// file_hash), and their size. Paths are relative to the storage origin, so a mirror only has to replicate them
// (CONVSERVE_WEIGHTS_BASE_URL=http://mirror.local → http://mirror.local/tensorflow/keras-applications/…).
import type { ArchitectureName } from './architectures/layers.js';

export interface OfficialFile {
  /** File name (also the name in the download cache). */
  file: string;
  /** Path below the storage origin. */
  path: string;
  md5: string;
  /** Size in bytes, when known (used for progress before the server answers and for stale partial downloads). */
  size?: number;
}

export const DEFAULT_WEIGHTS_BASE_URL = 'https://storage.googleapis.com';

const KA = 'tensorflow/keras-applications';

export const OFFICIAL_WEIGHTS: Record<ArchitectureName, { top: OfficialFile; notop: OfficialFile }> = {
  vgg19: {
    top: { file: 'vgg19_weights_tf_dim_ordering_tf_kernels.h5', path: `${KA}/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5`, md5: 'cbe5617147190e668d6c5d5026f83318', size: 574_710_816 },
    notop: { file: 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5', path: `${KA}/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`, md5: '253f8cb515780f3b799900260a226db6', size: 80_134_624 },
  },
  inception_v3: {
    top: { file: 'inception_v3_weights_tf_dim_ordering_tf_kernels.h5', path: `${KA}/inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5`, md5: '9a0d58056eeedaa3f26cb7ebd46da564', size: 96_112_376 },
    notop: { file: 'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5', path: `${KA}/inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`, md5: 'bcbd6486424b2319ff4ef7d526e38f63', size: 87_910_968 },
  },
};

export const CLASS_INDEX: OfficialFile = {
  file: 'imagenet_class_index.json',
  path: 'download.tensorflow.org/data/imagenet_class_index.json',
  md5: 'c2c37ea517e94d9795004a39431a14cb',
};

/** The models every installation knows about, with the commands that install them. */
export const KNOWN_MODELS: readonly ArchitectureName[] = ['vgg19', 'inception_v3'];

export function installCommands(arch: string): string[] {
  return [`convserve models fetch ${arch}`, `convserve models synth ${arch}`];
}

export function officialUrl(f: OfficialFile, baseUrl = DEFAULT_WEIGHTS_BASE_URL): string {
  return `${baseUrl.replace(/\/+$/, '')}/${f.path}`;
}
