/** A plain HTTP(S) client for tests: sends the path exactly as given (no URL normalization). */
import http from 'node:http';
import https from 'node:https';

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface HttpRequestOptions {
  method?: string;
  /** Raw request target, sent as is (`/../x` stays `/../x`). */
  path: string;
  /** HTTPS with these TLS options (CA, client certificate). */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  headers?: http.OutgoingHttpHeaders;
  /** Reuse connections (default: a new connection per request). */
  agent?: http.Agent;
}

/** Sends one request to `base` (`http://host:port` or `https://…`) and reads the whole answer. */
export function request(base: string, options: HttpRequestOptions): Promise<HttpAnswer> {
  const url = new URL(base);
  const secure = url.protocol === 'https:';
  const transport = secure ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(
      {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port,
        method: options.method ?? 'GET',
        path: options.path,
        headers: options.headers,
        agent: options.agent ?? false,
        ...(secure ? { ...options.tls, servername: 'localhost' } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** `GET base + path`. */
export function get(base: string, path: string, tls?: HttpRequestOptions['tls']): Promise<HttpAnswer> {
  return request(base, { path, tls });
}
