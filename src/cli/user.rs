//! `user add|list|disable|key-add|passwd`: provider accounts from the
//! operator's terminal.
//!
//! A generated password is never printed nor logged: it only leaves in the
//! e-mail queued for the user. It is a one-time password (valid `[accounts]
//! temporary_password_days` days when that is set): the user replaces it at
//! the first SFTP login. A password given on standard input is permanent. `passwd` reads a chosen password from
//! standard input (one line), without echo when it is a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{Ctx, Outcome, UserCommand};
use crate::accounts::{self, NewUser, PasswordChange};

fn read_key_file(path: &Path) -> Result<String> {
    let bytes = crate::fsutil::read(path)?;
    String::from_utf8(bytes).with_context(|| format!("{} is not a text public-key file", path.display()))
}

pub fn run(ctx: &Ctx, cmd: UserCommand) -> Result<Outcome> {
    let mut conn = crate::store::open(&ctx.cfg.paths.database)?;
    let now = ctx.clock.now();
    match cmd {
        UserCommand::Add {
            provider,
            login,
            email,
            key,
            admin,
        } => {
            let key_text = key.as_deref().map(read_key_file).transpose()?;
            let added = accounts::add_user(
                &mut conn,
                now,
                &NewUser {
                    provider: &provider,
                    login: &login,
                    email: &email,
                    key: key_text.as_deref(),
                    admin,
                    temporary_days: ctx.cfg.accounts.temporary_password_days,
                },
            )?;
            let role = if added.admin { "administrator" } else { "user" };
            match &added.key {
                Some(k) => println!("account {login} created for provider {provider} ({role}) with key {} {}", k.algorithm, k.fingerprint),
                None => println!(
                    "account {login} created for provider {provider} ({role}); a one-time password is queued for e-mail to {email}"
                ),
            }
            tracing::info!(login = %login, provider = %provider, admin = added.admin, "account created");
        }
        UserCommand::List { provider } => {
            let rows = accounts::list(&conn, provider.as_deref())?;
            print!("{}", table(&rows));
        }
        UserCommand::Disable { login } => {
            if accounts::disable(&mut conn, now, &login)? {
                println!("account {login} disabled");
                tracing::info!(login = %login, "account disabled");
            } else {
                println!("account {login} was already disabled");
            }
        }
        UserCommand::KeyAdd { login, pubkey_file } => {
            let k = accounts::key_add(&mut conn, now, &login, &read_key_file(&pubkey_file)?)?;
            println!("key {} {} added to account {login}", k.algorithm, k.fingerprint);
            tracing::info!(login = %login, fingerprint = %k.fingerprint, "key added");
        }
        UserCommand::Passwd { login, generate } => {
            if generate {
                let temporary_days = ctx.cfg.accounts.temporary_password_days;
                accounts::passwd(&mut conn, now, &login, &PasswordChange::Generate { temporary_days })?;
                println!("a new password for {login} is queued for e-mail");
            } else {
                let pw = read_password(&login)?;
                accounts::passwd(&mut conn, now, &login, &PasswordChange::Given(pw))?;
                println!("password of {login} changed");
            }
            tracing::info!(login = %login, generated = generate, "password set");
        }
    }
    Ok(Outcome::Ok)
}

/// The `user list` table: aligned columns, one account a line.
fn table(rows: &[accounts::UserRow]) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut cells: Vec<[String; 7]> = vec![[
        "LOGIN".into(),
        "PROVIDER".into(),
        "EMAIL".into(),
        "ADMIN".into(),
        "DISABLED".into(),
        "KEYS".into(),
        "PASSWORD".into(),
    ]];
    for r in rows {
        cells.push([
            r.login.clone(),
            r.provider.clone(),
            r.email.clone(),
            yes(r.admin).into(),
            yes(r.disabled).into(),
            r.keys.to_string(),
            yes(r.password).into(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One line from standard input; on a terminal, prompted and not echoed.
fn read_password(login: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let _echo = if tty {
        eprint!("New password for {login}: ");
        let _ = std::io::stderr().flush();
        EchoOff::new()
    } else {
        None
    };
    let mut line = String::new();
    let n = stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    if tty {
        eprintln!();
    }
    if n == 0 {
        bail!("no password given on standard input (or use --generate)");
    }
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    Ok(pw.to_string())
}

/// Terminal echo switched off until dropped.
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<EchoOff> {
        // SAFETY: plain termios calls on fd 0 with a zeroed, then filled, struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(EchoOff(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `new`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_table_is_aligned() {
        let rows = vec![accounts::UserRow {
            login: "alice".into(),
            provider: "saad1".into(),
            email: "alice@example.org".into(),
            admin: true,
            disabled: false,
            keys: 2,
            password: false,
        }];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "LOGIN  PROVIDER  EMAIL              ADMIN  DISABLED  KEYS  PASSWORD"
        );
        assert_eq!(
            lines[1],
            "alice  saad1     alice@example.org  yes    no        2     no"
        );
    }
}
