// Where the console's ES modules live (the package data the agent serves).
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
export const STATIC = path.resolve(here, "../../../agent/sara/agent/console/static");
export const js = (name) => new URL(`file://${STATIC}/js/${name}`).href;
