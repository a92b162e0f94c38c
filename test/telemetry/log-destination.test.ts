import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import fs, { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import { logDestination } from '../../src/log-destination.js'

interface Teardown { teardown: (fn: () => unknown) => void }

function tempDir (t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-log-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** A named pipe with a reader (not reading until `read` is called) and `writers` write ends. */
function fifo (t: Teardown, writers: number): { fds: number[], read: () => Promise<string>, reader: Socket } {
  const path = join(tempDir(t), 'log.fifo')
  execFileSync('mkfifo', [path])
  // the read end first, non-blocking, so opening the write ends does not wait for a reader
  const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  const fds = Array.from({ length: writers }, () => openSync(path, 'w'))
  const reader = new Socket({ fd: readFd, readable: true, writable: false })
  reader.pause()
  let text = ''
  reader.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
  t.teardown(() => { reader.destroy() })
  return {
    fds,
    reader,
    read: async () => {
      reader.resume()
      let before = -1
      // until nothing more arrives for a while
      while (text.length !== before) {
        before = text.length
        await sleep(100)
      }
      return text
    }
  }
}

/** The destination of a new file, and the file's path. */
function fileDestination (t: Teardown): { path: string, out: ReturnType<typeof logDestination> } {
  const path = join(tempDir(t), 'access.log')
  const fd = openSync(path, 'w')
  t.teardown(() => { closeSync(fd) })
  return { path, out: logDestination(fd) }
}

/** What the code under test writes to stderr, until `restore` (or the test's end). */
function captureStderr (t: Teardown): { stderr: string[], restore: () => void } {
  const stderr: string[] = []
  const write = process.stderr.write.bind(process.stderr)
  process.stderr.write = ((chunk: string) => { stderr.push(String(chunk)); return true }) as typeof process.stderr.write
  const restore = (): void => { process.stderr.write = write }
  t.teardown(restore)
  return { stderr, restore }
}

/** Past the destination's 10 ms flush. */
const flushed = async (): Promise<void> => { await sleep(30) }

const line = (writer: number, i: number, pad = 200): string => `${JSON.stringify({ writer, i, pad: 'x'.repeat(pad) })}\n`

t.test('a file gets the lines of 10 ms in one piece, in order', async t => {
  const { path, out } = fileDestination(t)
  const started = performance.now()
  for (let i = 0; i < 3; i++) {
    out.write(line(0, i))
    await nextTurn()
  }
  // three turns take well under a millisecond; on a machine so loaded that they took 10 ms the flush came due
  if (performance.now() - started < 10) t.equal(readFileSync(path, 'utf8'), '', 'nothing is written at the end of each turn')
  else t.comment('three event-loop turns took 10 ms or more here: not checked')
  await flushed()
  t.equal(readFileSync(path, 'utf8'), [0, 1, 2].map(i => line(0, i)).join(''), 'all of it, in one piece, 10 ms after the first')
  out.write(line(0, 3))
  out.flushSync()
  t.equal(readFileSync(path, 'utf8').split('\n').length - 1, 4, 'flushSync (process exit) writes a pending line at once')
  out.write(line(0, 4))
  await out.end(1000)
  t.equal(readFileSync(path, 'utf8').split('\n').length - 1, 5, 'end (graceful shutdown) writes what is pending')
})

t.test('more than 64 KiB at once is handed on at once', async t => {
  const { path, out } = fileDestination(t)
  for (let i = 0; i < 400; i++) out.write(line(0, i))
  const written = readFileSync(path, 'utf8').length
  // a batch goes when the next line might not fit in its 64 KiB
  t.ok(written > 60 * 1024 && written <= 64 * 1024, `${written} characters written within the turn`)
  t.ok(readFileSync(path, 'utf8').endsWith('\n'), 'whole lines')
  await flushed()
  t.equal(readFileSync(path, 'utf8').split('\n').length - 1, 400)
})

t.test('lines go out as UTF-8, in order, a line longer than a whole batch on its own', async t => {
  const { path, out } = fileDestination(t)
  const wide = (i: number, n: number): string => `${JSON.stringify({ i, text: 'é€😀'.repeat(n) })}\n`
  // 3- and 4-byte characters up to the batch's end, then a line of 300 KB (a long error stack)
  const lines = [...Array.from({ length: 2000 }, (_, i) => wide(i, 7)), wide(2000, 40_000), wide(2001, 1)]
  for (const l of lines) out.write(l)
  await flushed()
  t.equal(readFileSync(path, 'utf8'), lines.join(''), 'byte for byte')
})

t.test('a file that cannot be written: one line on stderr, and the process carries on', async t => {
  // opened for reading only: every write is refused (EBADF)
  const path = join(tempDir(t), 'read-only.log')
  closeSync(openSync(path, 'w'))
  const fd = openSync(path, 'r')
  t.teardown(() => { closeSync(fd) })
  const out = logDestination(fd)
  const { stderr, restore } = captureStderr(t)
  for (let turn = 0; turn < 3; turn++) {
    out.write(line(0, turn))
    await nextTurn()
  }
  await out.end(1000)
  restore()
  t.equal(stderr.length, 1, 'said once')
  t.match(stderr[0], /^sluice: log output failed \(EBADF\); log lines are dropped from now on\n$/)
})

t.test('a pipe whose reader is behind never blocks the event loop, and loses nothing below the bound', async t => {
  const pipe = fifo(t, 1)
  const out = logDestination(pipe.fds[0] as number)
  t.teardown(() => { closeSync(pipe.fds[0] as number) })
  let ticks = 0
  const ticker = setInterval(() => { ticks++ }, 5)
  const turns = 60
  const started = performance.now()
  // 60 turns of 20 lines, about 270 KB: over four times what a Linux pipe holds (64 KiB)
  for (let turn = 0; turn < turns; turn++) {
    for (let i = 0; i < 20; i++) out.write(line(0, turn * 20 + i))
    await sleep(1)
  }
  clearInterval(ticker)
  const elapsed = performance.now() - started
  t.ok(ticks >= 5, `timers kept firing while the pipe was full (${ticks} ticks in ${Math.round(elapsed)} ms)`)
  const ending = out.end(5000)
  const text = await pipe.read()
  await ending
  const lines = text.split('\n').filter(Boolean).map(l => JSON.parse(l) as { i: number })
  t.equal(lines.length, turns * 20, 'every line arrived')
  t.ok(lines.every((l, n) => l.i === n), 'in order')
})

t.test('while the pipe is full, new lines queue without trying to write: one refused write per retry', async t => {
  const pipe = fifo(t, 1)
  const out = logDestination(pipe.fds[0] as number)
  t.teardown(() => { closeSync(pipe.fds[0] as number) })
  // fill the pipe (64 KiB, and as much again the paused reader may have taken before it paused) and then some
  const filled = 1000
  for (let i = 0; i < filled; i++) out.write(line(0, i))
  await nextTurn()
  // count the real writes the pipe refused (the module's live binding follows node:fs once synced)
  let refused = 0
  const real = fs.writeSync
  fs.writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
    try {
      return real(...args)
    } catch (err) {
      refused++
      throw err
    }
  }) as typeof fs.writeSync
  syncBuiltinESMExports()
  t.teardown(() => { fs.writeSync = real; syncBuiltinESMExports() })
  const started = performance.now()
  // at least 200 turns, over at least 40 ms: several retries' worth
  let turns = 0
  while (turns < 200 || performance.now() - started < 40) {
    out.write(line(0, filled + turns++))
    await nextTurn()
  }
  const elapsed = performance.now() - started
  fs.writeSync = real
  syncBuiltinESMExports()
  // the retry runs every 5 ms and stops at the first refusal; a batch that comes due adds to the queue and does not try
  t.ok(refused >= 1, 'the pipe was full')
  t.ok(refused <= Math.ceil(elapsed / 5) + 2, `${refused} refused writes in ${turns} turns (${Math.round(elapsed)} ms)`)
  const ending = out.end(5000)
  const lines = (await pipe.read()).split('\n').filter(Boolean).map(l => JSON.parse(l) as { i: number })
  await ending
  t.equal(lines.length, filled + turns, 'every line arrived once the reader caught up')
  t.ok(lines.every((l, n) => l.i === n), 'in order')
})

t.test('two writers of one pipe never cut into each other\'s lines', async t => {
  const pipe = fifo(t, 2)
  const outs = pipe.fds.map(fd => logDestination(fd))
  t.teardown(() => { for (const fd of pipe.fds) closeSync(fd) })
  // turns of 40 KB from each writer while the reader is slow: the pipe fills, writes come back partial
  const reading = (async () => {
    await sleep(50)
    return pipe.read()
  })()
  for (let turn = 0; turn < 30; turn++) {
    outs.forEach((out, writer) => { for (let i = 0; i < 100; i++) out.write(line(writer, turn * 100 + i, 300 + ((turn + i) % 7) * 50)) })
    await nextTurn()
  }
  await Promise.all(outs.map(out => out.end(5000)))
  const lines = (await reading).split('\n').filter(Boolean)
  t.equal(lines.length, 2 * 30 * 100, 'every line arrived')
  const broken = lines.filter(l => { try { JSON.parse(l); return false } catch { return true } })
  t.equal(broken.length, 0, 'every line is whole')
  for (const writer of [0, 1]) {
    const own = lines.map(l => JSON.parse(l) as { writer: number, i: number }).filter(l => l.writer === writer)
    t.ok(own.every((l, n) => l.i === n), `writer ${writer}'s lines in order`)
  }
})

t.test('a pipe reader that stays behind past 16 MiB costs lines, not memory; a note says how many writes were dropped', async t => {
  const pipe = fifo(t, 1)
  const out = logDestination(pipe.fds[0] as number)
  t.teardown(() => { closeSync(pipe.fds[0] as number) })
  const { stderr, restore } = captureStderr(t)
  const batch = 'y'.repeat(1023) + '\n'
  // 20 MiB in 1 MiB turns, while nobody reads
  for (let turn = 0; turn < 20; turn++) {
    for (let i = 0; i < 64; i++) out.write(batch.repeat(16))
    await nextTurn()
  }
  restore()
  t.match(stderr.join(''), /the log reader is behind by 16 MiB; log lines are dropped/, 'said once on stderr')
  t.equal(stderr.length, 1, 'once, not per dropped write')
  const reading = pipe.read()
  await out.end(10_000)
  // the reader caught up: the next write goes through, after a note of the loss
  out.write('{"after":true}\n')
  await out.end(1000)
  const text = await reading
  t.ok(text.length < 18 * 1024 * 1024 && text.length >= 16 * 1024 * 1024, `${text.length} characters kept: the bound, not all 20 MiB`)
  t.match(text, /"msg":"\d+ batches of log lines dropped while the log reader was behind"}\n\{"after":true}\n$/, 'the next write notes the loss in the log itself')
})

t.test('a pipe whose reader is gone: one line on stderr, and the process carries on', async t => {
  const pipe = fifo(t, 1)
  const out = logDestination(pipe.fds[0] as number)
  t.teardown(() => { closeSync(pipe.fds[0] as number) })
  pipe.reader.destroy()
  await sleep(20)
  const { stderr, restore } = captureStderr(t)
  for (let turn = 0; turn < 5; turn++) {
    out.write(line(0, turn))
    await sleep(10)
  }
  await out.end(1000)
  restore()
  t.equal(stderr.length, 1, 'said once')
  t.match(stderr[0], /^sluice: log output failed \(EPIPE\); log lines are dropped from now on\n$/)
})

t.test('another user\'s pipe (a container running as non-root): a note on stderr, and still whole lines in order', async t => {
  // a pipe this process may not reopen: only a root test run can hand one to a less privileged child
  if (process.getuid?.() !== 0) {
    t.comment('needs root to start a child as another user: the non-blocking path above is the one tested here')
    return
  }
  const path = join(tempDir(t), 'log.fifo')
  execFileSync('mkfifo', ['-m', '600', path])
  const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  const writeFd = openSync(path, 'w')
  const reader = new Socket({ fd: readFd, readable: true, writable: false })
  let text = ''
  reader.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
  t.teardown(() => { reader.destroy() })
  const module = fileURLToPath(new URL('../../src/log-destination.ts', import.meta.url)).replace('/src/', '/dist/src/').replace(/\.ts$/, '.js')
  const script = `import { logDestination } from ${JSON.stringify(module)}
const out = logDestination(1)
for (let turn = 0; turn < 20; turn++) {
  for (let i = 0; i < 50; i++) out.write(JSON.stringify({ i: turn * 50 + i, pad: 'z'.repeat(150) }) + '\\n')
  await new Promise(resolve => setImmediate(resolve))
}
await out.end(5000)`
  // `env -i`: not tap's environment, whose coverage hooks would write where this user may not
  const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-i',
    process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', writeFd, 'pipe'] })
  closeSync(writeFd)
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  await sleep(100)
  t.equal(code, 0, stderr)
  t.match(stderr, /^sluice: stdout is a pipe this process cannot reopen non-blocking; log writes wait while its reader is behind\n$/)
  const lines = text.split('\n').filter(Boolean).map(l => JSON.parse(l) as { i: number })
  t.equal(lines.length, 1000, 'every line arrived whole')
  t.ok(lines.every((l, n) => l.i === n), 'in order')
})
