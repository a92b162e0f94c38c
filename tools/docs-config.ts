import { readFileSync, writeFileSync } from 'node:fs'
import { withConfigTable } from '../src/config/table.js'

// npm run docs:config: rewrites the configuration table in README.md from the schema
const path = new URL('../../README.md', import.meta.url)
writeFileSync(path, withConfigTable(readFileSync(path, 'utf8')))
