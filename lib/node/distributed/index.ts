/** The distributed layer: collectives, parameter server, DistributedOptimizer (docs/distributed.md). */
export { Collectives, ReduceOp } from './collectives';
export { reduceBuffer, reduceBuffers } from './float-kernels';
export { DEFAULT_CHUNK_BYTES, DistributedOptions, PeerGroup } from './group';
export { DistributedNode } from './node';
export { DistributedOptimizer, DistributedOptimizerOptions, VariableLike } from './optimizer';
export { assignShards, PsClient, PsModelConfig, PsWeights } from './ps';
export { AuthError, DistributedError, peerName } from './peers';
