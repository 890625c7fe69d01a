/**
 * The ESPHome version the version tests install besides the pinned one: another version
 * whose host-platform build needs nothing from the network (2026.9 builds host devices with
 * PlatformIO's native platform, downloaded from its registry at compile time).
 */
export const OTHER_ESPHOME_VERSION = "2026.10.0b6";
