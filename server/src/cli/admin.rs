//! `token create`, `admin-token create`, `policy key`, `hosts reset`.

use std::time::SystemTime;

use serde_json::json;

use super::Failure;
use crate::config::{Config, duration};
use crate::policy_key::PolicyKey;
use crate::time::rfc3339;
use crate::{hosts, secret};

pub async fn token_create(
    config: Config,
    uses: u32,
    expires: &str,
    json: bool,
) -> Result<(), Failure> {
    if uses == 0 || uses > i32::MAX as u32 {
        return Err(Failure {
            code: 2,
            message: format!("--uses: {uses} is outside 1..={}", i32::MAX),
        });
    }
    let lifetime = duration(expires).map_err(|m| Failure {
        code: 2,
        message: format!("--expires: {m}"),
    })?;
    let token =
        secret::generate(secret::ENROLL_PREFIX).map_err(|_| "the system random source failed")?;
    let expires_at = SystemTime::now() + lifetime;
    let pool = super::pool(&config)?;
    crate::db::migrate::run(&pool).await?;
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO enroll_tokens (token_hash, uses_total, uses_left, expires_at)
             VALUES ($1, $2, $2, $3)",
            &[&secret::hash(&token), &(uses as i32), &expires_at],
        )
        .await?;
    if json {
        println!(
            "{}",
            json!({"token": token, "uses": uses, "expires_at": rfc3339(expires_at)})
        );
    } else {
        println!("{token}");
        eprintln!(
            "nightjar-server: enrolment token for {uses} host(s), valid until {}",
            rfc3339(expires_at)
        );
    }
    Ok(())
}

pub async fn admin_token_create(config: Config, json: bool) -> Result<(), Failure> {
    let token =
        secret::generate(secret::ADMIN_PREFIX).map_err(|_| "the system random source failed")?;
    let pool = super::pool(&config)?;
    crate::db::migrate::run(&pool).await?;
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO admin_tokens (token_hash) VALUES ($1)",
            &[&secret::hash(&token)],
        )
        .await?;
    if json {
        println!("{}", json!({"token": token}));
    } else {
        println!("{token}");
    }
    Ok(())
}

pub fn policy_key(config: Config, json: bool) -> Result<(), Failure> {
    let key = PolicyKey::load_or_create(&config.state_dir)?;
    let v = key.to_json();
    if json {
        println!("{v}");
    } else {
        println!("key_id      {}", v["key_id"].as_str().unwrap_or(""));
        println!("public_key  {}", v["public_key"].as_str().unwrap_or(""));
        println!("algorithm   ed25519");
    }
    Ok(())
}

pub async fn hosts_reset(config: Config, host_id: &str) -> Result<(), Failure> {
    let pool = super::pool(&config)?;
    match hosts::reset(&pool, host_id).await? {
        Some(r) => {
            eprintln!(
                "nightjar-server: host {host_id:?} reset (key {} unpinned); it may enrol again, its chain restarting in epoch {}",
                r.old_key_id.as_deref().unwrap_or("none"),
                r.new_epoch
            );
            Ok(())
        }
        None => Err(Failure {
            code: 2,
            message: format!("no host {host_id:?}"),
        }),
    }
}
