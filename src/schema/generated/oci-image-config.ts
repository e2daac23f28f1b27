// Generated from schemas/oci-image-config.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * An OCI image configuration (application/vnd.oci.image.config.v1+json; Docker's container image config has the same shape). Unknown fields are allowed.
 */
export interface OciImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  config?: {
    User?: string;
    ExposedPorts?: {} | null;
    Env?: string[] | null;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Volumes?: {} | null;
    WorkingDir?: string;
    Labels?: {
      [k: string]: string;
    } | null;
    StopSignal?: string;
    ArgsEscaped?: boolean;
  } | null;
  rootfs: {
    type: 'layers';
    diff_ids: string[];
  };
  history?:
    | {
        created?: string;
        author?: string;
        created_by?: string;
        comment?: string;
        empty_layer?: boolean;
      }[]
    | null;
}
