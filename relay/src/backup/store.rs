//! Where a backup lives: a local directory or an S3, GCS or Azure URL, through `object_store`.
//! A local object is fsynced (with its directory) before `put` returns: `object_store`'s
//! local store renames a staged file into place but does not sync it, and the backup
//! acknowledges changes to the relay only once they survive a power cut.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("backup destination {0:?}: {1}")]
    Open(String, String),
    #[error("{op} {path}: {source}")]
    Object {
        op: &'static str,
        path: String,
        source: object_store::Error,
    },
    #[error("syncing {path}: {source}")]
    Sync {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct Destination {
    store: Arc<dyn ObjectStore>,
    /// The URL's path inside the bucket (empty for a local directory).
    prefix: Path,
    /// For a local directory: its path, to fsync what was written.
    local_root: Option<PathBuf>,
    shown: String,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Destination {
    /// `DIR` (created if absent), `file:///DIR`, `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix` (credentials from the usual AWS_*, GOOGLE_*, AZURE_* variables),
    /// or `memory://` (tests).
    pub fn open(to: &str) -> Result<Destination, StoreError> {
        let err = |e: &dyn std::fmt::Display| StoreError::Open(to.to_string(), e.to_string());
        let url = match url::Url::parse(to) {
            Ok(u) if u.scheme().len() > 1 => Some(u),
            _ => None, // a plain path (or a Windows drive letter)
        };
        let shown = match &url {
            // Never print credentials someone put in the URL.
            Some(u) => format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.path()
            ),
            None => to.to_string(),
        };
        let local = |dir: PathBuf| -> Result<Destination, StoreError> {
            std::fs::create_dir_all(&dir).map_err(|e| err(&e))?;
            let dir = dir.canonicalize().map_err(|e| err(&e))?;
            let store =
                object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| err(&e))?;
            Ok(Destination {
                store: Arc::new(store),
                prefix: Path::default(),
                local_root: Some(dir),
                shown: shown.clone(),
            })
        };
        let Some(url) = url else {
            return local(PathBuf::from(to));
        };
        let prefix = Path::from(url.path().trim_start_matches('/'));
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                return local(url.to_file_path().map_err(|_| err(&"not a local path"))?);
            }
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            "s3" | "s3a" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| err(&e))?,
            ),
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| err(&e))?,
            ),
            "az" | "azure" | "abfs" | "abfss" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| err(&e))?,
            ),
            other => {
                return Err(err(&format!(
                    "unsupported scheme {other:?}: use a directory, file://, s3://, gs:// or az://"
                )))
            }
        };
        Ok(Destination {
            store,
            prefix,
            local_root: None,
            shown,
        })
    }

    fn path(&self, name: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in name.split('/') {
            p = p.child(part);
        }
        p
    }

    /// Writes `name` and, for a local directory, fsyncs it and its directory.
    pub async fn put_durable(&self, name: &str, data: Bytes) -> Result<(), StoreError> {
        let path = self.path(name);
        self.store
            .put(&path, PutPayload::from(data))
            .await
            .map_err(|source| StoreError::Object {
                op: "writing",
                path: format!("{self:?}/{name}"),
                source,
            })?;
        if let Some(root) = &self.local_root {
            let file = root.join(name);
            let sync =
                |p: &std::path::Path| -> std::io::Result<()> { std::fs::File::open(p)?.sync_all() };
            let mut dirs = vec![file.clone()];
            // The file, then every directory up to the root (new ones were just created).
            let mut d = file.parent();
            while let Some(dir) = d {
                dirs.push(dir.to_path_buf());
                if dir == root {
                    break;
                }
                d = dir.parent();
            }
            tokio::task::spawn_blocking(move || {
                dirs.iter().try_for_each(|p| {
                    sync(p).map_err(|source| StoreError::Sync {
                        path: p.display().to_string(),
                        source,
                    })
                })
            })
            .await
            .expect("fsync task does not panic")?;
        }
        Ok(())
    }

    pub async fn get(&self, name: &str) -> Result<Bytes, StoreError> {
        let e = |source| StoreError::Object {
            op: "reading",
            path: format!("{self:?}/{name}"),
            source,
        };
        let got = self.store.get(&self.path(name)).await.map_err(e)?;
        got.bytes().await.map_err(e)
    }

    /// Whether `name` exists.
    pub async fn exists(&self, name: &str) -> Result<bool, StoreError> {
        match self.store.head(&self.path(name)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(StoreError::Object {
                op: "checking",
                path: format!("{self:?}/{name}"),
                source,
            }),
        }
    }

    /// Names (relative to the destination, `/`-separated) of every object under `dir`.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let prefix = self.path(dir);
        let metas: Vec<_> =
            self.store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|source| StoreError::Object {
                    op: "listing",
                    path: format!("{self:?}/{dir}"),
                    source,
                })?;
        let skip = self.prefix.parts().count();
        let mut names: Vec<String> = metas
            .into_iter()
            .map(|m| {
                m.location
                    .parts()
                    .skip(skip)
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        names.sort();
        Ok(names)
    }

    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.store
            .delete(&self.path(name))
            .await
            .map_err(|source| StoreError::Object {
                op: "deleting",
                path: format!("{self:?}/{name}"),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_directory_holds_synced_objects_listed_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("b");
        let d = Destination::open(root.to_str().unwrap()).unwrap();
        d.put_durable("log/a.wcf", Bytes::from_static(b"1"))
            .await
            .unwrap();
        d.put_durable("baseline/x/part.wcf", Bytes::from_static(b"22"))
            .await
            .unwrap();
        assert_eq!(d.list("log").await.unwrap(), ["log/a.wcf"]);
        assert_eq!(&d.get("baseline/x/part.wcf").await.unwrap()[..], b"22");
        assert!(root.join("log/a.wcf").is_file());
        assert!(d.exists("log/a.wcf").await.unwrap());
        assert!(!d.exists("log/b.wcf").await.unwrap());
        let m = Destination::open("memory:///some/prefix").unwrap();
        m.put_durable("log/a", Bytes::from_static(b"1"))
            .await
            .unwrap();
        assert_eq!(m.list("log").await.unwrap(), ["log/a"]);
        assert!(Destination::open("ftp://x/y").is_err());
    }
}
