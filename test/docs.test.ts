import t from 'tap'
import { readFileSync } from 'node:fs'
import { ERROR_CODES } from '../src/errors.js'
import { VARIABLES } from '../src/config/index.js'
import { withConfigTable } from '../src/config/table.js'

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')

t.test('every error code is documented in docs/errors.md', async t => {
  const doc = read('docs/errors.md')
  for (const code of [...ERROR_CODES, 'SLUICE_INTERNAL']) t.match(doc, `| \`${code}\` |`, code)
})

t.test('the README configuration table is the one generated from the schema', async t => {
  const readme = read('README.md')
  t.equal(readme, withConfigTable(readme), 'run `npm run docs:config` after changing src/config/schema.ts')
})

t.test('.env.example sets every variable with its default, each under a comment', async t => {
  const example = read('.env.example')
  for (const v of Object.values(VARIABLES)) {
    const line = example.split('\n').find(l => l.startsWith(`${v.env}=`))
    t.ok(line, `${v.env} is in .env.example`)
    if (v.env !== 'UPSTREAMS') t.equal(line, `${v.env}=${v.default}`, `${v.env} shows its default`)
  }
})
