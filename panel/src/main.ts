/**
 * Entry point: theme, strings, the one WebSocket, the store seeded from
 * `subscribe_events`, and the app element.
 */
import { loadLocalize } from "./common/localize.ts";
import { startTheme } from "./common/theme.ts";
import { BuilderApi } from "./data/api.ts";
import { Connection, websocketUrl } from "./data/connection.ts";
import { Store } from "./data/state.ts";
import "./esphome-builder-app.ts";

startTheme(window);

const { locale, localize } = await loadLocalize(navigator.languages.length > 0 ? navigator.languages : [navigator.language]);
document.documentElement.lang = locale;
document.title = localize("app.title");

const connection = new Connection({ url: websocketUrl(location.href) });
const api = new BuilderApi(connection);
const store = new Store();

connection.onStatus((status) => {
  store.dispatch({ type: "connection", status });
});
api.subscribeEvents({
  onInitialState: (state) => {
    store.dispatch({ type: "initial_state", state });
  },
  onEvent: (event) => {
    store.dispatch({ type: "event", event });
  },
});
connection.start();

const app = document.createElement("esphome-builder-app");
app.ctx = { api, store, localize, locale };
document.body.replaceChildren(app);

// For tests and debugging from the console.
Object.assign(window, { esphomeBuilder: { api, store, connection } });
