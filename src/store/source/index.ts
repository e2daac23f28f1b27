export { openSource, parseSpec, DEFAULT_PLATFORM, type ParsedSpec, type SourceKind } from './open-source.js';
export type { ImageSource, LayerRef, OpenSourceOptions, Platform } from './types.js';
