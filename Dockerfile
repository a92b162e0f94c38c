# Sluice gateway image. The same image runs the demo upstream:
#   docker run sluice node dist/tools/backend.js --host 0.0.0.0 --port 3000 --name b1
# docker-compose.yml uses it for both.

# --- build: compile TypeScript, then keep only the production dependencies ----------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
# dependencies first: this layer is reused until package.json or the lockfile change
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# exactly what tsconfig.build.json compiles
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
COPY tools ./tools
RUN npm run build \
  && rm -f dist/.tsbuildinfo \
  && npm prune --omit=dev --no-audit --no-fund

# --- runtime: compiled code and production node_modules, nothing else ------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# owned by root and read-only for the process: it cannot modify its own code
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# the unprivileged user the node images ship with (uid 1000)
USER node
EXPOSE 8080
# no curl in slim images: node's own fetch, on PORT if it was changed
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# node itself as PID 1 (not npm): it receives SIGTERM and shuts down gracefully
CMD ["node", "dist/src/server.js"]
