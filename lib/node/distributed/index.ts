/** The distributed layer: collectives, parameter server, DistributedOptimizer (docs/distributed.md). */
export { Collectives, ReduceOp } from './collectives';
export { DistributedNode, DistributedOptions } from './node';
export { DistributedOptimizer, DistributedOptimizerOptions, VariableLike } from './optimizer';
export { assignShards, PsClient, PsModelConfig, PsWeights } from './ps';
export { AuthError, DistributedError, peerName } from './peers';
export { tf, tfSource } from './tf';
export { localContext, LocalNodeSpec } from './local';
