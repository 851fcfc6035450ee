// The tutorial's Node.js server: the `ws` README's "Server broadcast" example, as it is,
// sending every message it receives to every connected client. No auth, no storage.
// Only the port comes from the environment (PORT) so the benchmark can pick a free one.
import WebSocket, { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT || 8080) });

wss.on('connection', function connection(ws) {
  ws.on('error', console.error);

  ws.on('message', function message(data, isBinary) {
    wss.clients.forEach(function each(client) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
});
