// Weight roles. Files that store weight names (HDF5 `weight_names`, tfjs manifests) give the role in the name;
// the Keras 3 `.keras` archive stores only positions (`vars/0`, `vars/1`, …) in the layer's variable order:
// Layer.save_own_variables writes `_trainable_variables + _non_trainable_variables`, each in the order `build()`
// creates them (keras/src/layers/*: Dense/Conv kernel then bias; Depthwise kernel then bias; Separable depthwise,
// pointwise, bias; BatchNormalization gamma?, beta?, moving_mean, moving_variance; LayerNormalization gamma?,
// beta?; PReLU alpha; an adapted Normalization mean, variance, count). The table below is that order.

type Config = Record<string, unknown>;
/** Roles of a layer class's saved variables given its config, in save order. */
type RoleRule = (config: Config) => string[];

const flag = (config: Config, key: string) => config[key] !== false; // Keras defaults are true for these flags
const withBias = (roles: string[]): RoleRule => (c) => (flag(c, 'use_bias') ? [...roles, 'bias'] : roles);
const normalization: RoleRule = (c) => [...(flag(c, 'scale') ? ['gamma'] : []), ...(flag(c, 'center') ? ['beta'] : [])];
const none: RoleRule = () => [];

const WEIGHTLESS = [
  'InputLayer', 'Activation', 'ReLU', 'LeakyReLU', 'ELU', 'Softmax', 'ThresholdedReLU',
  'MaxPooling1D', 'MaxPooling2D', 'MaxPooling3D', 'AveragePooling1D', 'AveragePooling2D', 'AveragePooling3D',
  'GlobalAveragePooling1D', 'GlobalAveragePooling2D', 'GlobalAveragePooling3D',
  'GlobalMaxPooling1D', 'GlobalMaxPooling2D', 'GlobalMaxPooling3D',
  'Flatten', 'Reshape', 'Permute', 'RepeatVector', 'Masking', 'ActivityRegularization',
  'Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'SpatialDropout3D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout',
  'ZeroPadding1D', 'ZeroPadding2D', 'ZeroPadding3D', 'Cropping1D', 'Cropping2D', 'Cropping3D',
  'UpSampling1D', 'UpSampling2D', 'UpSampling3D',
  'Concatenate', 'Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum', 'Dot',
  'Rescaling', 'Resizing', 'CenterCrop',
];

const RULES: Record<string, RoleRule> = {
  ...Object.fromEntries(WEIGHTLESS.map((c) => [c, none])),
  Dense: withBias(['kernel']),
  Conv1D: withBias(['kernel']),
  Conv2D: withBias(['kernel']),
  Conv3D: withBias(['kernel']),
  Conv1DTranspose: withBias(['kernel']),
  Conv2DTranspose: withBias(['kernel']),
  Conv3DTranspose: withBias(['kernel']),
  DepthwiseConv1D: withBias(['depthwise_kernel']),
  DepthwiseConv2D: withBias(['depthwise_kernel']),
  SeparableConv1D: withBias(['depthwise_kernel', 'pointwise_kernel']),
  SeparableConv2D: withBias(['depthwise_kernel', 'pointwise_kernel']),
  BatchNormalization: (c) => [...normalization(c), 'moving_mean', 'moving_variance'],
  LayerNormalization: normalization,
  PReLU: () => ['alpha'],
  // Normalization(mean=…, variance=…) keeps its statistics in the config and creates no variables.
  Normalization: (c) => (c.mean === undefined || c.mean === null ? ['mean', 'variance', 'count'] : []),
  Embedding: () => ['embeddings'],
};

/** The roles of `className`'s saved variables, in Keras 3 save order; undefined for a class this table does not know. */
export function variableRoles(className: string, config: Config): string[] | undefined {
  return RULES[className]?.(config);
}

/**
 * Keras 3 names DepthwiseConv's variable `kernel` where Keras 2 and tfjs say `depthwise_kernel`; one role name
 * per meaning keeps the converter dialect-free.
 */
const ALIASES: Record<string, Record<string, string>> = {
  DepthwiseConv1D: { kernel: 'depthwise_kernel' },
  DepthwiseConv2D: { kernel: 'depthwise_kernel' },
};

/** The role of a stored weight name: `conv2d_1/kernel:0` → `kernel`, `block1_conv1/bias` → `bias`. */
export function roleFromStoredName(className: string, storedName: string): string {
  const role = (storedName.split('/').at(-1) ?? storedName).replace(/:\d+$/, '');
  return ALIASES[className]?.[role] ?? role;
}
