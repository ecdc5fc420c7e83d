#!/usr/bin/env -S node --
// `node --`: Node 20 would otherwise take a later `--env-file <path>` (a tp flag) as its own option
import {execute} from '@oclif/core'

await execute({dir: import.meta.url})
