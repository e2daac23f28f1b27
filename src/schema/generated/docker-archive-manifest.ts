// Generated from schemas/docker-archive-manifest.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * The manifest.json of a docker-archive (docker save / podman save / skopeo docker-archive:): one entry per image, paths relative to the archive root.
 */
export type DockerArchiveManifest = {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
  Parent?: string;
  LayerSources?: {
    [k: string]: {
      mediaType: string;
      digest: string;
      size: number;
    };
  };
}[];
