// Generated from schemas/oci-image-layout.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * The oci-layout file at the top of an OCI image layout.
 */
export interface OciImageLayout {
  imageLayoutVersion: string;
}
