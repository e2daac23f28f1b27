// The annotations strata puts in the config.json it writes. A leaf module on purpose: the bundle
// writer, the hooks.d writer and the daemon all need these names, and none of them should load
// another's code to get them.

/** The image (a reference or, as strata writes it, the manifest digest) a bundle runs. */
export const IMAGE_ANNOTATION = 'org.strata.image';

/** `missing`, `always` or `never` (podman's --pull words): the daemon pulls the image named by
 * IMAGE_ANNOTATION from its registry before serving the root (the shim's and strata-runtime's
 * bundles ask for it this way; absent = never, as before). */
export const PULL_ANNOTATION = 'org.strata.pull';

/** crun's precompiled seccomp filter (base64 BPF): set only by strata, from linux.seccomp
 * (seccomp-bpf.ts); a user's --annotation of it is refused. */
export const SECCOMP_BPF_ANNOTATION = 'run.oci.seccomp_bpf_data';
/** crun's switch that makes an unknown syscall name an error (a precompiled filter would hide it). */
export const SECCOMP_FAIL_UNKNOWN_ANNOTATION = 'run.oci.seccomp_fail_unknown_syscall';

/** containerd's CRI plugin: the image a Kubernetes container was created from, as the kubelet
 * named it (containerd pkg/cri/annotations ImageName). strata-runtime's daemon serves it when the
 * store holds that name; a hint only, never a path. */
export const CRI_IMAGE_NAME_ANNOTATION = 'io.kubernetes.cri.image-name';
/** containerd's CRI plugin: `sandbox` (the pod's pause container) or `container`. */
export const CRI_CONTAINER_TYPE_ANNOTATION = 'io.kubernetes.cri.container-type';
