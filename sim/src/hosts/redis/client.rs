//! A tiny RESP2 client over turmoil's TCP, for the simulation's own checks
//! and tests (the gateways use the driver's client).

use std::io;

use bytes::BytesMut;
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::encode::extend_encode;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Reply;

/// One connection to a Redis (the stand-in, in the simulation).
#[derive(Debug)]
pub struct Client {
    stream: turmoil::net::TcpStream,
    input: BytesMut,
}

impl Client {
    /// Connects to `host:port`.
    pub async fn connect(host: &str, port: u16) -> io::Result<Client> {
        Ok(Client {
            stream: turmoil::net::TcpStream::connect((host, port)).await?,
            input: BytesMut::with_capacity(1024),
        })
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut replies = self.pipeline(&[args]).await?;
        replies
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no reply"))
    }

    /// [`Client::call`] with text arguments.
    pub async fn cmd(&mut self, args: &[&str]) -> io::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call(&args).await
    }

    /// Sends every command at once, then reads one reply for each.
    pub async fn pipeline(&mut self, commands: &[&[&[u8]]]) -> io::Result<Vec<Reply>> {
        let mut out = BytesMut::new();
        for args in commands {
            let frame = BytesFrame::Array(
                args.iter()
                    .map(|a| BytesFrame::BulkString(a.to_vec().into()))
                    .collect(),
            );
            extend_encode(&mut out, &frame, false)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?;
        }
        self.stream.write_all(&out).await?;
        let mut replies = Vec::with_capacity(commands.len());
        while replies.len() < commands.len() {
            match decode_bytes_mut(&mut self.input) {
                Ok(Some((frame, _, _))) => replies.push(Reply::from_frame(&frame)),
                Ok(None) => {
                    if self.stream.read_buf(&mut self.input).await? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the connection",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}"))),
            }
        }
        Ok(replies)
    }
}
