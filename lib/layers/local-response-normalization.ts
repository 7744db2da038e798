/**
 * Local response normalisation as a Keras-style layer. tfjs has the op
 * (tf.localResponseNormalization) but no layer, so models that use it (the CIFAR-10 tutorial CNN)
 * could not be saved and loaded again. Registering the class with tfjs's serialization map lets
 * `tf.loadLayersModel` rebuild it from model.json; the package registers it when it is imported.
 *
 * Parameters follow tf.nn.lrn: for each position, x / (bias + alpha · Σ x²)^beta, the sum over
 * `depthRadius` channels on each side.
 */
import * as tfc from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

export interface LocalResponseNormalizationArgs {
  depthRadius?: number;
  bias?: number;
  alpha?: number;
  beta?: number;
  name?: string;
  inputShape?: number[];
  trainable?: boolean;
}

type LayerArgs = ConstructorParameters<typeof tfl.layers.Layer>[0];

export class LocalResponseNormalization extends tfl.layers.Layer {
  /** The name in model.json; tfjs looks the class up by it. */
  static readonly className = 'LocalResponseNormalization';
  readonly depthRadius: number;
  readonly bias: number;
  readonly alpha: number;
  readonly beta: number;

  constructor(args: LocalResponseNormalizationArgs = {}) {
    super(args as LayerArgs);
    this.depthRadius = args.depthRadius ?? 5;
    this.bias = args.bias ?? 1;
    this.alpha = args.alpha ?? 1;
    this.beta = args.beta ?? 0.5;
    for (const [k, v] of Object.entries({ depthRadius: this.depthRadius, bias: this.bias, alpha: this.alpha, beta: this.beta })) {
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new TypeError(`LocalResponseNormalization: ${k} must be a finite number, got ${String(v)}`);
    }
    if (!Number.isInteger(this.depthRadius) || this.depthRadius < 0)
      throw new RangeError(`LocalResponseNormalization: depthRadius must be an integer >= 0, got ${this.depthRadius}`);
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tfc.Tensor | tfc.Tensor[]): tfc.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (x.rank !== 4) throw new Error(`LocalResponseNormalization '${this.name}' takes NHWC images (rank 4), got rank ${x.rank}`);
    return tfc.localResponseNormalization(x as tfc.Tensor4D, this.depthRadius, this.bias, this.alpha, this.beta);
  }

  override getConfig(): tfc.serialization.ConfigDict {
    return { ...super.getConfig(), depthRadius: this.depthRadius, bias: this.bias, alpha: this.alpha, beta: this.beta };
  }
}

tfc.serialization.registerClass(LocalResponseNormalization);

/** Functional form, like tf.layers.*: `localResponseNormalization({ depthRadius: 4, ... })`. */
export function localResponseNormalization(args?: LocalResponseNormalizationArgs): LocalResponseNormalization {
  return new LocalResponseNormalization(args);
}
