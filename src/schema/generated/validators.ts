// Generated from schemas/*.schema.json by scripts/gen-types.mjs. Do not edit.

/** schemas/<name>.schema.json (and a few sub-schemas, <name>#/definitions/<d>) -> the module in
 * ./validators/ whose export is its validator. */
export const validatorModules: Record<string, string> = {
  'containers-storage-containers': 'containers-storage-containers.cjs',
  'containers-storage-images': 'containers-storage-images.cjs',
  'containers-storage-layers': 'containers-storage-layers.cjs',
  'daemon-api': 'daemon-api.cjs',
  'docker-archive-manifest': 'docker-archive-manifest.cjs',
  'held-session': 'held-session.cjs',
  'hook-state': 'hook-state.cjs',
  'hooks-d': 'hooks-d.cjs',
  'image-record': 'image-record.cjs',
  'lease': 'lease.cjs',
  'oci-image-config': 'oci-image-config.cjs',
  'oci-image-index': 'oci-image-index.cjs',
  'oci-image-layout': 'oci-image-layout.cjs',
  'oci-image-manifest': 'oci-image-manifest.cjs',
  'registry-auth-file': 'registry-auth-file.cjs',
  'registry-token': 'registry-token.cjs',
  'runtime-config': 'runtime-config.cjs',
  'seccomp-profile': 'seccomp-profile.cjs',
  'daemon-api#/definitions/request': 'daemon-api.request.cjs',
  'daemon-api#/definitions/response': 'daemon-api.response.cjs',
};
