/**
 * The canvas: signatures, chains, groups, chords, map/starmap/chunks, task
 * replacement, as Celery defines them and in Celery's wire format, so a
 * canvas built here runs on Python workers and the other way round.
 */
export { Signature, maybeSignature, signature, type FreezeOptions } from './signature.js';
export { Chain, chain, pipeSignatures, type ValidChain } from './chain.js';
export { Group, group, type ResultOf } from './group.js';
export { Chord, chord } from './chord.js';
export { MapSignature, ChunksSignature } from './maps.js';
export { toCeleryOptions, toApplyOptions, stampMessageHeaders, type CeleryOptions, type SignatureOptions, type SignatureLike } from './options.js';
export { descend } from './descend.js';
export { replaceTask, addToChord } from './replace.js';
export { registerBuiltinTasks } from './builtins.js';
export { mergeDictionaries, requestStamps, type StampingVisitor, type StampOptions, type Stamps, type VisitorStamps } from './stamping.js';
