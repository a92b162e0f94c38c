import { Readable } from 'node:stream'

/**
 * The request body handed to one upstream attempt. It reads nothing from the client until the
 * HTTP client starts writing it, so when an attempt fails before that (connection refused, connect
 * timeout) the client stream is untouched and a fresh `AttemptBody` can carry it to another
 * upstream. The upstream client destroys the body it was given when an attempt fails; without this
 * wrapper that would be the client's own request.
 */
export class AttemptBody extends Readable {
  readonly #source: Readable
  #started = false

  constructor (source: Readable) {
    super()
    this.#source = source
  }

  /** Whether any of the client's body was read into this attempt (then it cannot be replayed). */
  get started (): boolean {
    return this.#started
  }

  override _read (): void {
    if (!this.#started) {
      this.#started = true
      this.#source.on('data', this.#onData)
      this.#source.once('end', this.#onEnd)
      this.#source.once('error', this.#onError)
    }
    this.#source.resume()
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#started) {
      this.#source.off('data', this.#onData)
      this.#source.off('end', this.#onEnd)
      this.#source.off('error', this.#onError)
    }
    callback(error)
  }

  readonly #onData = (chunk: Buffer): void => {
    if (!this.push(chunk)) this.#source.pause()
  }

  readonly #onEnd = (): void => { this.push(null) }
  readonly #onError = (error: Error): void => { this.destroy(error) }
}
