# flamingo.c: build and test in a clean Debian 12, then a slim runtime image.
#   docker build -t flamingo .
#   docker run --rm -v $PWD/models:/models flamingo info /models/model.safetensors
FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN apt-get update && tools/deps.sh && make -j"$(nproc)" && make test

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libmicrohttpd12 libcjson1 libstb0 libopenblas0-pthread libjpeg62-turbo \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/flamingo /usr/local/bin/flamingo
ENTRYPOINT ["flamingo"]
CMD ["--help"]
