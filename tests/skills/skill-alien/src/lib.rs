//! Test skill `alien`: imports `darkfactory:skill/teleport`, which no host
//! provides; the host must refuse to load it and name the import.

wit_bindgen::generate!({
    inline: r#"
        package darkfactory:skill@0.1.0;

        interface types {
            record skill-error { code: string, message: string }
        }

        interface teleport {
            beam: func(to: string) -> string;
        }

        world alien {
            use types.{skill-error};
            import teleport;
            export run: func(input: string) -> result<string, skill-error>;
        }
    "#,
    world: "alien",
});

struct Alien;

impl Guest for Alien {
    fn run(input: String) -> Result<String, SkillError> {
        Ok(darkfactory::skill::teleport::beam(&input))
    }
}

export!(Alien);
