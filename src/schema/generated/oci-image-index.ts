// Generated from schemas/oci-image-index.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * An OCI image index (application/vnd.oci.image.index.v1+json), also the index.json of an image layout. Unknown fields are allowed, as the spec requires readers to ignore them.
 */
export interface OciImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Annotations;
  artifactType?: string;
  data?: string;
  platform?: Platform;
}
export interface Annotations {
  [k: string]: string;
}
export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  features?: string[];
}
