// Generated from schemas/oci-image-manifest.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * An OCI image manifest (application/vnd.oci.image.manifest.v1+json or Docker's v2 schema 2 manifest, which has the same shape). Unknown fields are allowed.
 */
export interface OciImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
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
