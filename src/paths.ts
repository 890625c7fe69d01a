/**
 * Every on-disk path the builder uses, resolved in one place. Nothing else
 * joins paths by hand: the add-on (`/data`) and standalone layouts differ only
 * here.
 */
import path from "node:path";

export interface Paths {
  /** Folder holding the device YAMLs. */
  readonly configDir: string;
  /** ESPHome's data dir (build trees, storage, idedata); the CLI gets it as ESPHOME_DATA_DIR. */
  readonly dataDir: string;
  /** The builder's own state folder inside the data dir. */
  readonly stateDir: string;
  /** The job index (metadata only, never output). */
  readonly jobsFile: string;
  /** Device addresses the owner set and when each device was last seen (src/devices/device-store.ts). */
  readonly devicesFile: string;
  /** Process groups of running jobs, so a restart can reap what a crash left. */
  readonly processesFile: string;
  /** Per-job log files, one `<job_id>.log` each. */
  readonly jobLogsDir: string;
  jobLog(jobId: string): string;
  /** ESPHome's StorageJSON for a configuration. */
  storageJson(configuration: string): string;
  /** ESPHome's build folder for a device name. */
  buildDir(deviceName: string): string;
  /** The PlatformIO env folder holding a device's firmware images. */
  firmwareDir(deviceName: string): string;
  /** Temporary files of the builder (staging, downloads). */
  readonly tmpDir: string;
  /** On a build server: bundles extracted for paired offloaders, `<pin>/<device>/` (the peer's pin, never its chosen id). */
  readonly remoteBuildsDir: string;
  /** Identity: the X25519 private key (secret, 0600). */
  readonly peerLinkKeyFile: string;
  /** Identity: this builder's dashboard_id. */
  readonly identityFile: string;
  /** Build server: settings and approved offloaders (0600). */
  readonly receiverFile: string;
  /** Offloader: settings and approved build servers (0600). */
  readonly offloaderFile: string;
  /** Where this builder's own compiles run (`local_builds`). */
  readonly placementFile: string;
  /** Which build server compiled each device last (warm-cache affinity). */
  readonly affinityFile: string;
  /** On a build server: the ESPHome versions installed for peers (`<version>` environments, upstream's place for them). */
  readonly buildServerVersionsDir: string;
  /** Managed ESPHome: one environment per version, `<data-dir>/esphome/<version>/`. */
  readonly esphomeDir: string;
  /** Managed ESPHome: the version chosen in the panel. */
  readonly esphomeSelectionFile: string;
  /** The YAML a job builds: in the config folder, or for a job from a peer, in its extracted bundle. */
  jobYaml(job: { configuration: string; remote_peer: string }): string;
  /** ESPHome's data dir for a job: a peer's job gets its own build cache beside its bundle. */
  jobDataDir(job: { configuration: string; remote_peer: string }): string;
}

export function resolvePaths(opts: { configDir: string; dataDir?: string | undefined }): Paths {
  const configDir = path.resolve(opts.configDir);
  const dataDir = path.resolve(opts.dataDir ?? path.join(configDir, ".esphome"));
  const stateDir = path.join(dataDir, "builder");
  const jobLogsDir = path.join(stateDir, "job-logs");
  const remoteBuildsDir = path.join(dataDir, ".remote_builds");
  return {
    configDir,
    dataDir,
    stateDir,
    jobsFile: path.join(stateDir, "jobs.json"),
    devicesFile: path.join(stateDir, "devices.json"),
    processesFile: path.join(stateDir, "processes.json"),
    jobLogsDir,
    jobLog: (jobId) => path.join(jobLogsDir, `${jobId}.log`),
    storageJson: (configuration) => path.join(dataDir, "storage", `${configuration}.json`),
    buildDir: (deviceName) => path.join(dataDir, "build", deviceName),
    firmwareDir: (deviceName) => path.join(dataDir, "build", deviceName, ".pioenvs", deviceName),
    tmpDir: path.join(stateDir, "tmp"),
    remoteBuildsDir,
    peerLinkKeyFile: path.join(stateDir, "peer-link-key.bin"),
    identityFile: path.join(stateDir, "identity.json"),
    receiverFile: path.join(stateDir, "receiver.json"),
    offloaderFile: path.join(stateDir, "offloader.json"),
    placementFile: path.join(stateDir, "placement.json"),
    affinityFile: path.join(stateDir, "build-affinity.json"),
    buildServerVersionsDir: path.join(remoteBuildsDir, "venvs"),
    esphomeDir: path.join(dataDir, "esphome"),
    esphomeSelectionFile: path.join(stateDir, "esphome.json"),
    jobYaml: (job) =>
      job.remote_peer === "" ? path.join(configDir, job.configuration) : path.join(remoteBuildsDir, job.configuration),
    jobDataDir: (job) =>
      job.remote_peer === "" ? dataDir : path.join(remoteBuildsDir, path.dirname(job.configuration), ".esphome"),
  };
}
