// The annotations strata puts in the config.json it writes. A leaf module on purpose: the bundle
// writer, the hooks.d writer and the daemon all need these names, and none of them should load
// another's code to get them.

/** The image (a reference or, as strata writes it, the manifest digest) a bundle runs. */
export const IMAGE_ANNOTATION = 'org.strata.image';
