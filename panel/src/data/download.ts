/** Firmware downloads: a single-use token, then the browser fetches the relative URL. */
import type { BuilderApi } from "./api.ts";

export async function downloadFirmware(api: BuilderApi, configuration: string, file: string, doc: Document = document): Promise<void> {
  const grant = await api.downloadToken(configuration, file);
  // Relative to the page, so it goes through the Home Assistant ingress prefix.
  const url = new URL(grant.url, doc.baseURI);
  const anchor = doc.createElement("a");
  anchor.href = url.href;
  anchor.download = grant.filename;
  anchor.rel = "noopener";
  anchor.style.display = "none";
  doc.body.append(anchor);
  anchor.click();
  anchor.remove();
}
