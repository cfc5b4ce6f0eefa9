// The classic MNIST convnet of Deep Learning with Python (1st ed., §5.1; keras-facts §9) as a network the ONNX
// Runtime trainer builds (./ort-net.ts), NCHW: conv 32 3×3 relu (valid) → maxpool 2 → conv 64 3×3 relu → maxpool 2
// → conv 64 3×3 relu → flatten → dense 64 relu → dense 10 softmax: 93,322 parameters, plus dropout after the flatten
// and after dense 64 (no parameters). The same network as ./mnist-model.ts (tfjs), and as torch_peer.py's mnist_epoch.
import type { NetSpec } from './ort-net.js';

export function mnistNet(dropout = 0.25): NetSpec {
  return {
    input: [1, 28, 28],
    layers: [
      { kind: 'conv', name: 'conv1', filters: 32, kernel: 3, padding: 'valid', activation: 'relu' },
      { kind: 'maxPool', name: 'pool1', size: 2 },
      { kind: 'conv', name: 'conv2', filters: 64, kernel: 3, padding: 'valid', activation: 'relu' },
      { kind: 'maxPool', name: 'pool2', size: 2 },
      { kind: 'conv', name: 'conv3', filters: 64, kernel: 3, padding: 'valid', activation: 'relu' },
      { kind: 'flatten', name: 'flatten' },
      ...(dropout > 0 ? [{ kind: 'dropout' as const, name: 'dropout1', rate: dropout }] : []),
      { kind: 'dense', name: 'dense1', units: 64, activation: 'relu' },
      ...(dropout > 0 ? [{ kind: 'dropout' as const, name: 'dropout2', rate: dropout }] : []),
      { kind: 'dense', name: 'dense2', units: 10, activation: 'softmax' },
    ],
  };
}
